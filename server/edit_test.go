package main

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

var _ = alsoOn(onMemory, TestAuthorsEditTheirTextMessages)

func TestAuthorsEditTheirTextMessages(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, author, other, outsider := n.user(t, "Owner"), n.user(t, "Author"), n.user(t, "Other"), n.user(t, "Outsider")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{author.id, other.id}})
	wa, wx := n.connect(author), n.connect(other)
	first := wa.say(room.ID, "e1", "회비는 3만원입니다")
	gone := wa.say(room.ID, "e2", "oops")

	// Over the WebSocket: others may not, bad bodies are refused.
	wx.send(map[string]any{"type": "edit", "room": room.ID, "seq": first.Seq, "body": "mine now"})
	if f := wx.await("error"); f.Code != "forbidden" {
		t.Fatalf("another member editing: %+v", f)
	}
	wa.send(map[string]any{"type": "edit", "room": room.ID, "seq": first.Seq, "body": ""})
	if f := wa.await("error"); f.Code != "validation" {
		t.Fatalf("editing to an empty body: %+v", f)
	}
	wa.send(map[string]any{"type": "edit", "room": room.ID, "seq": 999, "body": "x"})
	if f := wa.await("error"); f.Code != "not_found" {
		t.Fatalf("editing a missing message: %+v", f)
	}
	wa.send(map[string]any{"type": "edit", "room": room.ID, "seq": first.Seq, "body": "회비는 4만원입니다"})
	ev := wx.await("edited")
	if ev.Room != room.ID || ev.Seq != first.Seq || ev.Body != "회비는 4만원입니다" || time.Since(time.UnixMilli(ev.EditedAt)) > time.Minute {
		t.Fatalf("edited event %+v", ev)
	}

	// Over REST: the author only, answered with the edited message.
	mp := urlf("/api/rooms/%d/messages/", room.ID)
	var m frameMsg
	author.must(200, "PATCH", mp+fmt.Sprint(first.Seq), map[string]any{"body": "회비는 5만원입니다"}, &m)
	if m.Seq != first.Seq || m.Body != "회비는 5만원입니다" || m.EditedAt < ev.EditedAt || m.From != author.id || m.CID != "e1" || m.TS != first.TS {
		t.Fatalf("PATCH answered %+v", m)
	}
	if ev := wx.await("edited"); ev.Body != "회비는 5만원입니다" || ev.EditedAt != m.EditedAt {
		t.Fatalf("second edited event %+v", ev)
	}
	other.fails(403, "forbidden", "PATCH", mp+fmt.Sprint(first.Seq), map[string]any{"body": "x"})
	outsider.fails(403, "not_member", "PATCH", mp+fmt.Sprint(first.Seq), map[string]any{"body": "x"})
	author.fails(400, "validation", "PATCH", mp+fmt.Sprint(first.Seq), map[string]any{"body": ""})
	author.fails(400, "bad_request", "PATCH", mp+fmt.Sprint(first.Seq), map[string]any{"body": "x", "seq": 3})
	author.fails(400, "bad_request", "PATCH", mp+"abc", map[string]any{"body": "x"})
	author.fails(404, "not_found", "PATCH", mp+"999", map[string]any{"body": "x"})

	// A deleted message stays deleted; system messages are nobody's to edit.
	wa.send(map[string]any{"type": "delete", "room": room.ID, "seq": gone.Seq})
	wx.await("deleted")
	author.fails(404, "not_found", "PATCH", mp+fmt.Sprint(gone.Seq), map[string]any{"body": "back"})
	joiner := n.user(t, "Joiner")
	joiner.must(200, "POST", urlf("/api/rooms/%d/join", room.ID), nil, nil)
	sys := wx.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Kind == "system" })
	owner.fails(403, "forbidden", "PATCH", mp+fmt.Sprint(sys.Seq), map[string]any{"body": "x"})
	joiner.fails(403, "forbidden", "PATCH", mp+fmt.Sprint(sys.Seq), map[string]any{"body": "x"})

	// History and sync return the current version; search finds the new
	// text (once stored) and not the old.
	var h struct{ Messages []frameMsg }
	other.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &h)
	if len(h.Messages) < 2 || h.Messages[0].Body != "회비는 5만원입니다" || h.Messages[0].EditedAt != m.EditedAt || h.Messages[1].Body != "" || h.Messages[1].EditedAt != 0 {
		t.Fatalf("history %+v", h.Messages)
	}
	wx.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 0}})
	if s := wx.await("msg"); s.Seq != first.Seq || s.Body != "회비는 5만원입니다" || s.EditedAt != m.EditedAt {
		t.Fatalf("synced %+v", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found, old struct{ Messages []frameMsg }
		other.must(200, "GET", urlf("/api/rooms/%d/messages/search?q=%s", room.ID, url.QueryEscape("5만원")), nil, &found)
		other.must(200, "GET", urlf("/api/rooms/%d/messages/search?q=%s", room.ID, url.QueryEscape("3만원")), nil, &old)
		if len(found.Messages) == 1 && len(old.Messages) == 0 {
			if found.Messages[0].EditedAt != m.EditedAt {
				t.Fatalf("search found %+v", found.Messages[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search for the new text: %+v, for the old: %+v", found.Messages, old.Messages)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The room list's last message is the current version too.
	var l struct {
		Rooms []struct {
			ID          int64    `json:"id"`
			LastMessage frameMsg `json:"last_message"`
		} `json:"rooms"`
	}
	wa.send(map[string]any{"type": "edit", "room": room.ID, "seq": first.Seq, "body": "회비는 6만원입니다"})
	wx.await("edited")
	last := wa.say(room.ID, "e3", "마지막")
	author.must(200, "PATCH", mp+fmt.Sprint(last.Seq), map[string]any{"body": "마지막 (수정)"}, nil)
	other.must(200, "GET", "/api/rooms", nil, &l)
	if len(l.Rooms) != 1 || l.Rooms[0].LastMessage.Body != "마지막 (수정)" || l.Rooms[0].LastMessage.EditedAt == 0 {
		t.Fatalf("room list %+v", l.Rooms)
	}
}
