package main

import (
	"encoding/json"
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

var _ = alsoOn(onMemory, TestDuesRuleChangeIsASystemMessage)

// TestDuesRuleChangeIsASystemMessage: setting the dues rule is said in
// the room as a system message with the rule's fields, for clients to
// render in the reader's language.
func TestDuesRuleChangeIsASystemMessage(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "총무"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	wm := n.connect(member)
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "weekly", "due_day": 5}, nil)
	m := wm.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Room == room.ID && f.Kind == "system" })
	var sys struct {
		System struct {
			Event    string `json:"event"`
			By       int64  `json:"by"`
			ByName   string `json:"by_name"`
			Amount   int64  `json:"amount"`
			Currency string `json:"currency"`
			Period   string `json:"period"`
			DueDay   int    `json:"due_day"`
			From     string `json:"from"`
		} `json:"system"`
	}
	var h struct{ Messages []json.RawMessage }
	member.must(200, "GET", urlf("/api/rooms/%d/messages?after=%d&limit=1", room.ID, m.Seq-1), nil, &h)
	if len(h.Messages) != 1 {
		t.Fatalf("history at %d: %d messages", m.Seq, len(h.Messages))
	}
	raw := h.Messages[0]
	if err := json.Unmarshal(raw, &sys); err != nil {
		t.Fatal(err)
	}
	s := sys.System
	if s.Event != "dues_changed" || s.By != owner.id || s.ByName != "총무" || s.Amount != 30000 || s.Currency != "KRW" ||
		s.Period != "weekly" || s.DueDay != 5 || s.From == "" || m.From != 0 {
		t.Fatalf("dues-rule system message %s", raw)
	}
	if want := "총무님이 회비를 30,000원(매주 금요일 납부)으로 정했습니다. " + s.From + "부터 적용됩니다."; m.Body != want {
		t.Fatalf("body %q, want %q", m.Body, want)
	}
}
