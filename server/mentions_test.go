package main

import (
	"fmt"
	"slices"
	"testing"
)

type mentionMsg struct {
	Seq      int64   `json:"seq"`
	Body     string  `json:"body"`
	Mentions []int64 `json:"mentions"`
}

var _ = alsoOn(onMemory, TestMentionsNameMembersAtSendTime)

func TestMentionsNameMembersAtSendTime(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob, dan, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Dan"), n.user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id, dan.id}})
	wb := n.connect(bob)
	bobName, danName, carolName := bob.username, dan.username, carol.username

	// Upper case matches; a non-member, an e-mail address and a repeat do not add anyone.
	wa := n.connect(alice)
	body := fmt.Sprintf("@%s 회비 부탁해요, @%s. cc @%s and mail %s@example.com @%s", upper(bobName), danName, carolName, carolName, bobName)
	wa.say(room.ID, "m1", body)
	m := wb.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.CID == "m1" })
	want := []int64{bob.id, dan.id}
	slices.Sort(want)
	if !slices.Equal(m.Mentions, want) {
		t.Fatalf("live message mentions %v, want %v", m.Mentions, want)
	}
	plain := wa.say(room.ID, "m2", "no one named here")
	var rest struct{ Seq int64 }
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "m3", "body": "@" + danName + " over REST"}, &rest)

	var h struct{ Messages []mentionMsg }
	bob.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &h)
	got := map[int64][]int64{}
	for _, msg := range h.Messages {
		got[msg.Seq] = msg.Mentions
	}
	if !slices.Equal(got[m.Seq], want) || got[plain.Seq] != nil || !slices.Equal(got[rest.Seq], []int64{dan.id}) {
		t.Fatalf("mentions %v, want %v on %d, none on %d, [%d] on %d", got, want, m.Seq, plain.Seq, dan.id, rest.Seq)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
