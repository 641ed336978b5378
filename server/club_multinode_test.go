package main

import (
	"testing"

	"moim/internal/testkit"
)

// TestClubEventsCrossNodes: an invitation, the system message of its
// acceptance, an edit and a notice reach connections on the other node.
func TestClubEventsCrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	owner, guest := nodes[0].user(t, "Owner"), nodes[1].user(t, "Guest")
	wo, wg := nodes[0].connect(owner), nodes[1].connect(guest)
	var room struct {
		roomView
		Invited []int64 `json:"invited"`
	}
	owner.must(201, "POST", "/api/rooms", map[string]any{"name": "Club", "member_ids": []int64{guest.id}}, &room)
	inv := wg.await("invitation")
	if inv.Invitation.RoomID != room.ID || len(room.Invited) != 1 {
		t.Fatalf("invitation on the other node %+v (room %+v)", inv, room)
	}
	guest.must(200, "POST", urlf("/api/invitations/%d/accept", inv.Invitation.ID), nil, nil)
	if m := wo.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Room == room.ID }); m.System.Event != "invitation_accepted" || m.System.User != guest.id {
		t.Fatalf("acceptance seen on the other node: %+v", m)
	}
	// The guest's open connection on node 1 now has the room.
	said := wg.say(room.ID, "x1", "안녕하세요")
	guest.must(200, "PATCH", urlf("/api/rooms/%d/messages/%d", room.ID, said.Seq), map[string]any{"body": "안녕하세요!"}, nil)
	if ev := wo.await("edited"); ev.Seq != said.Seq || ev.Body != "안녕하세요!" {
		t.Fatalf("edit seen on the other node: %+v", ev)
	}
	owner.must(200, "PUT", urlf("/api/rooms/%d/notice", room.ID), map[string]any{"seq": said.Seq}, nil)
	if ev := wg.await("notice"); ev.Notice == nil || ev.Notice.Body != "안녕하세요!" {
		t.Fatalf("notice seen on the other node: %+v", ev)
	}
}

// TestInviteLinkAcrossNodes: a link made on one node lets a user in on
// another; the join line reaches the first node's connection and the
// newcomer's connection on the second node gets the room at once.
func TestInviteLinkAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	owner, guest := nodes[0].user(t, "Owner"), nodes[1].user(t, "Guest")
	room := owner.createRoom(map[string]any{"name": "Club", "password": "club password"})
	l := owner.link(room.ID, map[string]any{"max_uses": 1})
	wo, wg := nodes[0].connect(owner), nodes[1].connect(guest)
	guest.must(200, "POST", testkit.JoinPath(l.Code), nil, nil)
	if m := wo.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Room == room.ID }); m.System.Event != "joined_by_link" || m.System.User != guest.id {
		t.Fatalf("join by link seen on the other node: %+v", m)
	}
	wo.say(room.ID, "hi", "어서 와요")
	if m := wg.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.CID == "hi" }); m.Room != room.ID {
		t.Fatalf("newcomer's connection on node 1: %+v", m)
	}
	nodes[1].user(t, "Late").fails(410, "invite_used_up", "POST", testkit.JoinPath(l.Code), nil)
}
