package main

import (
	"testing"
)

type noticeView struct {
	Seq   int64  `json:"seq"`
	Body  string `json:"body"`
	SetBy int64  `json:"set_by"`
	SetAt string `json:"set_at"`
}

type roomWithNotice struct {
	ID     int64       `json:"id"`
	Notice *noticeView `json:"notice"`
}

var _ = alsoOn(onMemory, TestAdminsPinANotice)

func TestAdminsPinANotice(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member, outsider := n.user(t, "Owner"), n.user(t, "Member"), n.user(t, "Outsider")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{member.id}})
	wo, wm := n.connect(owner), n.connect(member)
	pinned := wo.say(room.ID, "n1", "이번 달 회비는 3만원, 25일까지")
	np := urlf("/api/rooms/%d/notice", room.ID)

	member.fails(403, "forbidden", "PUT", np, map[string]any{"seq": pinned.Seq})
	outsider.fails(403, "not_member", "PUT", np, map[string]any{"seq": pinned.Seq})
	owner.fails(400, "validation", "PUT", np, map[string]any{"seq": 0})
	owner.fails(400, "bad_request", "PUT", np, map[string]any{"seq": "1"})
	owner.fails(404, "not_found", "PUT", np, map[string]any{"seq": 999})
	owner.fails(404, "not_found", "DELETE", np, nil)

	var v noticeView
	owner.must(200, "PUT", np, map[string]any{"seq": pinned.Seq}, &v)
	if v.Seq != pinned.Seq || v.Body != "이번 달 회비는 3만원, 25일까지" || v.SetBy != owner.id || v.SetAt == "" {
		t.Fatalf("set notice %+v", v)
	}
	ev := wm.await("notice")
	if ev.Room != room.ID || ev.Notice == nil || ev.Notice.Seq != pinned.Seq || ev.Notice.Body != v.Body {
		t.Fatalf("notice event %+v", ev)
	}
	var got roomWithNotice
	member.must(200, "GET", urlf("/api/rooms/%d", room.ID), nil, &got)
	if got.Notice == nil || got.Notice.Seq != pinned.Seq || got.Notice.Body != v.Body {
		t.Fatalf("GET room's notice %+v", got.Notice)
	}

	// The notice shows the message as it is now: edited, or gone when deleted.
	owner.must(200, "PATCH", urlf("/api/rooms/%d/messages/%d", room.ID, pinned.Seq), map[string]any{"body": "회비 4만원, 25일까지"}, nil)
	var list struct{ Rooms []roomWithNotice }
	member.must(200, "GET", "/api/rooms", nil, &list)
	if len(list.Rooms) != 1 || list.Rooms[0].Notice == nil || list.Rooms[0].Notice.Body != "회비 4만원, 25일까지" {
		t.Fatalf("room list's notice %+v", list.Rooms)
	}
	wo.send(map[string]any{"type": "delete", "room": room.ID, "seq": pinned.Seq})
	wm.await("deleted")
	got = roomWithNotice{}
	member.must(200, "GET", urlf("/api/rooms/%d", room.ID), nil, &got)
	if got.Notice != nil {
		t.Fatalf("a deleted message is still the notice: %+v", got.Notice)
	}
	owner.fails(404, "not_found", "PUT", np, map[string]any{"seq": pinned.Seq})

	// Clearing: the event carries no notice.
	other := wo.say(room.ID, "n2", "모임은 토요일")
	owner.must(200, "PUT", np, map[string]any{"seq": other.Seq}, nil)
	wm.await("notice")
	owner.must(204, "DELETE", np, nil, nil)
	if ev := wm.await("notice"); ev.Notice != nil {
		t.Fatalf("clearing sent notice %+v", ev.Notice)
	}
	got = roomWithNotice{}
	member.must(200, "GET", urlf("/api/rooms/%d", room.ID), nil, &got)
	if got.Notice != nil {
		t.Fatalf("cleared notice still shown: %+v", got.Notice)
	}
}
