package main

import (
	"fmt"
	"slices"
	"testing"
)

var _ = alsoOn(onMemory, TestSystemMessagesTellTheRoomWhoCameAndWent)

func TestSystemMessagesTellTheRoomWhoCameAndWent(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, joiner, kicked := n.user(t, "Owner"), n.user(t, "민수"), n.user(t, "Kicked")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{kicked.id}})
	wo := n.connect(owner)
	rp := urlf("/api/rooms/%d", room.ID)

	joiner.must(200, "POST", rp+"/join", nil, nil)
	owner.must(200, "PUT", rp+urlf("/members/%d/role", joiner.id), map[string]any{"role": "admin"}, nil)
	owner.must(200, "PUT", rp+urlf("/members/%d/role", joiner.id), map[string]any{"role": "admin"}, nil) // no change: nothing said
	owner.must(200, "PUT", rp+urlf("/members/%d/role", joiner.id), map[string]any{"role": "member"}, nil)
	owner.must(204, "DELETE", rp+urlf("/members/%d", kicked.id), nil, nil)
	owner.must(200, "PATCH", rp, map[string]any{"name": "산악회"}, nil)
	owner.must(200, "PATCH", rp, map[string]any{"description": "no name change: nothing said"}, nil)
	joiner.must(204, "POST", rp+"/leave", nil, nil)
	second := n.user(t, "Heir")
	second.must(200, "POST", rp+"/join", nil, nil)
	owner.must(200, "PUT", rp+"/owner", map[string]any{"user_id": second.id}, nil)

	// Live, in order, to a member's connection.
	want := []struct {
		event, role, name, body string
		user, by                int64
	}{
		{"joined", "", "", "민수님이 들어왔습니다.", joiner.id, 0},
		{"role_changed", "admin", "", "Owner님이 민수님을 관리자로 지정했습니다.", joiner.id, owner.id},
		{"role_changed", "member", "", "Owner님이 민수님의 관리자 권한을 해제했습니다.", joiner.id, owner.id},
		{"removed", "", "", "Owner님이 Kicked님을 내보냈습니다.", kicked.id, owner.id},
		{"renamed", "", "산악회", "Owner님이 방 이름을 '산악회'(으)로 바꿨습니다.", 0, owner.id},
		{"left", "", "", "민수님이 나갔습니다.", joiner.id, 0},
		{"joined", "", "", "Heir님이 들어왔습니다.", second.id, 0},
		{"owner_changed", "", "", "Owner님이 Heir님에게 방장을 넘겼습니다.", second.id, owner.id},
	}
	var seqs []int64
	for _, w := range want {
		m := wo.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Room == room.ID })
		s := m.System
		if m.Kind != "system" || m.From != 0 || m.Name != "" || s.Event != w.event || s.User != w.user || s.By != w.by ||
			s.Role != w.role || s.Name != w.name || m.Body != w.body {
			t.Fatalf("system message %+v, want %+v", m, w)
		}
		seqs = append(seqs, m.Seq)
	}
	// Stored and synced like any message.
	if ev := owner.systemEvents(room.ID); !slices.Equal(ev, []string{"joined", "role_changed", "role_changed", "removed", "renamed", "left", "joined", "owner_changed"}) {
		t.Fatalf("history's system messages %v", ev)
	}
	wo.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): seqs[0] - 1}})
	if m := wo.await("msg"); m.Seq != seqs[0] || m.System.Event != "joined" || m.System.UserName != "민수" {
		t.Fatalf("synced %+v", m)
	}
	// Nobody deletes them, not even the owner.
	wo.send(map[string]any{"type": "delete", "room": room.ID, "seq": seqs[0]})
	if f := wo.await("error"); f.Code != "forbidden" {
		t.Fatalf("deleting a system message: %+v", f)
	}
}
