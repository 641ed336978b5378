package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestPushesAndMentionsReachTheSink runs the generator with pushes and
// mentions against a real zero-setup node that accepts loopback push
// endpoints: every fifth user and one away member per room subscribe
// through the REST route, every body names another member; the node
// resolves every mention, and posts pushes (urgent ones for messages
// naming the away member) to the generator's sink, only for the away
// members.
func TestPushesAndMentionsReachTheSink(t *testing.T) {
	base := startNode(t, "MOIM_PUSH_LOOPBACK=true", "MOIM_PUSH_WINDOW=500ms")
	out, err := runLoadgen(t, "-url", base, "-users", "10", "-room-size", "5", "-rate", "20",
		"-duration", "4s", "-drain", "10s", "-settle", "100ms", "-limits", "60s", "-push-wait", "1500ms",
		"-push-subs", "5", "-push-away", "1", "-mentions", "1")
	if err != nil {
		t.Fatalf("loadgen exited with %v, want the stage passing", err)
	}
	var res struct {
		Sent, Acked, Lost int64
		Push              *pushResult
	}
	lastResult(t, out, &res)
	p := res.Push
	if p == nil {
		t.Fatal("the result has no push figures")
	}
	if p.SubscribedOnline != 2 || p.Away != 2 {
		t.Errorf("%d connected and %d away subscribers, want 2 and 2 (users 1 and 6, one away member in each of 2 rooms)", p.SubscribedOnline, p.Away)
	}
	if p.Pushes == 0 || p.Urgent == 0 || p.ToConnected != 0 {
		t.Errorf("pushes %d, urgent %d, to connected users %d: want pushes for the away members, some for messages naming them, none for users who are connected", p.Pushes, p.Urgent, p.ToConnected)
	}
	if res.Sent == 0 || p.MentionsSent != res.Sent || p.MentionsResolved != p.MentionsSent {
		t.Errorf("sent %d, mentions sent %d, resolved %d: want every body naming a member, each resolved by the node", res.Sent, p.MentionsSent, p.MentionsResolved)
	}
}

// TestPushesAreOffByDefault: a run without the push flags serves no sink
// and reports no push figures, so the baseline of a comparison is plain
// chat.
func TestPushesAreOffByDefault(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.pushSubs != 0 || o.pushAway != 0 || o.mentions != 0 {
		t.Errorf("defaults push-subs %d push-away %d mentions %g, want all 0", o.pushSubs, o.pushAway, o.mentions)
	}
	if strings.Contains((&result{}).jsonLine(), `"push"`) {
		t.Error("a result without pushes carries a push object")
	}
	for _, bad := range [][]string{
		{"-mentions", "1.5"},
		{"-mentions", "-0.1"},
		{"-mentions", "NaN"},
		{"-push-subs", "-1"},
		{"-push-away", "-1"},
		{"-push-away", "1", "-push-wait", "-1s"},
		{"-push-away", "1", "-push-sink", "10.0.0.1:9000"},
		{"-push-away", "1", "-push-sink", "nonsense"},
		{"-push-away", "1", "-prefix", strings.Repeat("p", 27)},
		{"-room-size", "1000", "-push-away", "2"},
		{"-storm", "-mentions", "0.1"},
		{"-target", "centrifugo", "-centrifugo-secret", "k", "-push-subs", "10"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// TestMentionBodies: a body naming a member keeps its size and still
// tells recipients its send time and cid, and the name is written as
// the server's @-syntax reads it (after a space, ended by one); the
// member named is another member of the room, connected or away.
func TestMentionBodies(t *testing.T) {
	cid := []byte("lg-1718000000123456789-2s")
	body := appendMentionBody(nil, 1718000000123456789, cid, "lg_a00002", []byte(strings.Repeat("x", 100)), 100)
	if len(body) != 100 || !bytes.Contains(body, []byte(" @lg_a00002 x")) {
		t.Errorf("body %q: want 100 bytes naming @lg_a00002 between spaces", body)
	}
	if sent, got := bodySent(body); sent != 1718000000123456789 || !bytes.Equal(got, cid) {
		t.Errorf("body with a mention reads as sent %d cid %q", sent, got)
	}

	r := &room{away: []*account{{name: "lg_a00001"}}}
	for i := range 3 {
		r.members = append(r.members, &client{room: r, acct: &account{name: fmt.Sprintf("lg_%05d", i+1)}})
	}
	seen := map[string]bool{}
	for pick := range 6 {
		seen[r.members[0].mentionTarget(pick)] = true
	}
	if len(seen) != 3 || !seen["lg_a00001"] || !seen["lg_00002"] || !seen["lg_00003"] || seen["lg_00001"] {
		t.Errorf("user 1 names %v, want the two other connected members and the away one, never itself", seen)
	}
	alone := &room{}
	alone.members = []*client{{room: alone, acct: &account{name: "lg_00001"}}}
	if n := alone.members[0].mentionTarget(0); n != "" {
		t.Errorf("alone in a room, a body names %q", n)
	}

	c := &client{acct: &account{id: 42}}
	own := []byte(`{"type":"msg","room":7,"seq":3,"from":42,"name":"A","body":"lg 1 x @b","cid":"x","ts":1,"kind":"text","mentions":[43]}`)
	other := bytes.Replace(own, []byte(`"from":42`), []byte(`"from":43`), 1)
	faked := []byte(`{"type":"msg","room":7,"seq":3,"from":42,"name":"A","body":"lg 1 x \"mentions\":[43]","cid":"x","ts":1,"kind":"text"}`)
	if !c.ownMention(own) || c.ownMention(other) || c.ownMention(faked) {
		t.Error("ownMention: want only the user's own message with resolved mentions")
	}
}
