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

// unreadMentions is c's unread-mention count per room from the room list.
func (c *client) unreadMentions() map[int64]int64 {
	c.t.Helper()
	var l struct {
		Rooms []struct {
			ID             int64 `json:"id"`
			UnreadMentions int64 `json:"unread_mentions"`
		} `json:"rooms"`
	}
	c.must(200, "GET", "/api/rooms", nil, &l)
	out := map[int64]int64{}
	for _, r := range l.Rooms {
		out[r.ID] = r.UnreadMentions
	}
	return out
}

var _ = alsoOn(onMemory, TestUnreadMentionCount)

// TestUnreadMentionCount: the room list counts unread messages that
// mention me, and the count follows my reads and deleted messages.
func TestUnreadMentionCount(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	other := alice.createRoom(map[string]any{"name": "Other", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	first := wa.say(room.ID, "m1", "@"+bob.username+" 회비 확인해 주세요")
	wa.say(room.ID, "m2", "nothing for bob")
	wa.say(room.ID, "m3", "@"+alice.username+" note to self")
	second := wa.say(room.ID, "m4", "@"+bob.username+" again")
	third := wa.say(room.ID, "m5", "and @"+bob.username+" once more")
	wa.say(other.ID, "o1", "no mention here")
	if got := bob.unreadMentions(); got[room.ID] != 3 || got[other.ID] != 0 {
		t.Fatalf("unread mentions %v, want 3 in %d and 0 in %d", got, room.ID, other.ID)
	}
	if got := alice.unreadMentions(); got[room.ID] != 0 {
		t.Fatalf("alice's own messages count as unread mentions: %v", got)
	}
	wb.send(map[string]any{"type": "read", "room": room.ID, "seq": first.Seq})
	wb.awaitWhere(func(f frameMsg) bool { return f.Type == "read" && f.User == bob.id && f.Seq == first.Seq })
	if got := bob.unreadMentions(); got[room.ID] != 2 {
		t.Fatalf("after reading the first mention: %v, want 2", got)
	}
	wa.send(map[string]any{"type": "delete", "room": room.ID, "seq": second.Seq})
	wb.awaitWhere(func(f frameMsg) bool { return f.Type == "deleted" && f.Seq == second.Seq })
	if got := bob.unreadMentions(); got[room.ID] != 1 {
		t.Fatalf("after the second mention was deleted: %v, want 1", got)
	}
	wb.send(map[string]any{"type": "read", "room": room.ID, "seq": third.Seq})
	wb.awaitWhere(func(f frameMsg) bool { return f.Type == "read" && f.User == bob.id && f.Seq == third.Seq })
	if got := bob.unreadMentions(); got[room.ID] != 0 {
		t.Fatalf("after reading everything: %v, want 0", got)
	}
}
