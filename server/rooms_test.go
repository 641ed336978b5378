package main

import (
	"context"
	"net/url"
	"strconv"
	"testing"
)

type roomView struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	OwnerID     int64  `json:"owner_id"`
	Direct      bool   `json:"direct"`
	HasPassword bool   `json:"has_password"`
	MemberCount int64  `json:"member_count"`
	Role        string `json:"role"`
}

type roomList struct {
	Rooms      []roomView `json:"rooms"`
	NextCursor string     `json:"next_cursor"`
}

// createRoom creates a room with every member_ids user in it: they first
// add the creator as a contact, since others would only be invited.
func (c *client) createRoom(body map[string]any) roomView {
	c.t.Helper()
	if ids, ok := body["member_ids"].([]int64); ok {
		c.knows(ids...)
	}
	var v roomView
	c.must(201, "POST", "/api/rooms", body, &v)
	return v
}

func (c *client) myRoles() map[int64]string {
	c.t.Helper()
	var l roomList
	c.must(200, "GET", "/api/rooms", nil, &l)
	roles := map[int64]string{}
	for _, r := range l.Rooms {
		roles[r.ID] = r.Role
	}
	return roles
}

// mirrored asserts the hub's copy of membership (Redis, or the single
// node's memory) agrees with want.
func (n *testNode) mirrored(t *testing.T, roomID int64, want map[int64]bool) {
	t.Helper()
	for uid, in := range want {
		got, err := n.hub.IsMember(context.Background(), roomID, uid)
		if err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("membership mirror: user %d in room %d = %v, want %v", uid, roomID, got, in)
		}
	}
}

func TestRoomLifecycleAndRoles(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, admin, member, outsider := n.user(t, "Owner"), n.user(t, "Admin"), n.user(t, "Member"), n.user(t, "Outsider")

	room := owner.createRoom(map[string]any{"name": "  등산 모임  ", "description": "Saturday hikes", "member_ids": []int64{admin.id, member.id, admin.id, owner.id}})
	if room.Name != "등산 모임" || room.OwnerID != owner.id || room.MemberCount != 3 || room.Role != "owner" || room.HasPassword {
		t.Fatalf("created room %+v", room)
	}
	if r := member.myRoles()[room.ID]; r != "member" {
		t.Fatalf("member sees role %q in GET /api/rooms", r)
	}
	if _, ok := outsider.myRoles()[room.ID]; ok {
		t.Fatal("outsider sees the room in their list")
	}
	n.mirrored(t, room.ID, map[int64]bool{owner.id: true, admin.id: true, member.id: true, outsider.id: false})

	rp := urlf("/api/rooms/%d", room.ID)
	member.must(200, "GET", rp, nil, nil)
	outsider.fails(403, "not_member", "GET", rp, nil)
	outsider.fails(403, "not_member", "GET", rp+"/members", nil)
	owner.fails(404, "not_found", "GET", "/api/rooms/999999999", nil)
	owner.fails(400, "bad_request", "GET", "/api/rooms/abc", nil)
	owner.fails(400, "bad_request", "GET", "/api/rooms/-1", nil)

	// Roles: only the owner promotes.
	admin.fails(403, "forbidden", "PUT", rp+urlf("/members/%d/role", member.id), map[string]any{"role": "admin"})
	owner.fails(400, "validation", "PUT", rp+urlf("/members/%d/role", admin.id), map[string]any{"role": "king"})
	owner.fails(400, "validation", "PUT", rp+urlf("/members/%d/role", owner.id), map[string]any{"role": "member"})
	owner.fails(404, "not_found", "PUT", rp+urlf("/members/%d/role", outsider.id), map[string]any{"role": "admin"})
	var mv struct {
		UserID int64  `json:"user_id"`
		Role   string `json:"role"`
	}
	owner.must(200, "PUT", rp+urlf("/members/%d/role", admin.id), map[string]any{"role": "admin"}, &mv)
	if mv.UserID != admin.id || mv.Role != "admin" {
		t.Fatalf("set role returned %+v", mv)
	}

	// Patch: admins yes, members no.
	member.fails(403, "forbidden", "PATCH", rp, map[string]any{"name": "mine now"})
	admin.fails(400, "validation", "PATCH", rp, map[string]any{"name": ""})
	admin.fails(400, "bad_request", "PATCH", rp, map[string]any{"owner_id": member.id})
	var patched roomView
	admin.must(200, "PATCH", rp, map[string]any{"description": "Sunday hikes"}, &patched)
	if patched.Name != "등산 모임" || patched.Description != "Sunday hikes" || patched.Role != "admin" {
		t.Fatalf("patched room %+v", patched)
	}

	var members struct {
		Members []struct {
			UserID      int64  `json:"user_id"`
			DisplayName string `json:"display_name"`
			Role        string `json:"role"`
		} `json:"members"`
	}
	member.must(200, "GET", rp+"/members", nil, &members)
	roles := map[int64]string{}
	for _, m := range members.Members {
		roles[m.UserID] = m.Role
	}
	if len(roles) != 3 || roles[owner.id] != "owner" || roles[admin.id] != "admin" || roles[member.id] != "member" {
		t.Fatalf("members = %+v", members)
	}

	// Kicks: a member cannot, an admin can kick members but not admins or the owner.
	other := n.user(t, "Other")
	other.must(200, "POST", rp+"/join", nil, nil)
	member.fails(403, "forbidden", "DELETE", rp+urlf("/members/%d", other.id), nil)
	admin.fails(403, "forbidden", "DELETE", rp+urlf("/members/%d", owner.id), nil)
	owner.must(200, "PUT", rp+urlf("/members/%d/role", other.id), map[string]any{"role": "admin"}, nil)
	admin.fails(403, "forbidden", "DELETE", rp+urlf("/members/%d", other.id), nil)
	owner.must(200, "PUT", rp+urlf("/members/%d/role", other.id), map[string]any{"role": "member"}, nil)
	admin.must(204, "DELETE", rp+urlf("/members/%d", other.id), nil, nil)
	admin.fails(404, "not_found", "DELETE", rp+urlf("/members/%d", other.id), nil)
	admin.fails(400, "validation", "DELETE", rp+urlf("/members/%d", admin.id), nil)
	other.fails(403, "not_member", "GET", rp, nil)
	n.mirrored(t, room.ID, map[int64]bool{other.id: false})

	// Leaving: members may, the owner may not.
	member.must(204, "POST", rp+"/leave", nil, nil)
	member.fails(403, "not_member", "POST", rp+"/leave", nil)
	owner.fails(409, "owner_cannot_leave", "POST", rp+"/leave", nil)
	n.mirrored(t, room.ID, map[int64]bool{member.id: false, owner.id: true})

	// Deleting: only the owner.
	admin.fails(403, "forbidden", "DELETE", rp, nil)
	owner.must(204, "DELETE", rp, nil, nil)
	owner.fails(404, "not_found", "GET", rp, nil)
	admin.fails(404, "not_found", "POST", rp+"/join", nil)
	n.mirrored(t, room.ID, map[int64]bool{owner.id: false, admin.id: false})
}

func TestRoomCreateRejectsBadInput(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.user(t, "Maker")
	c.fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": ""})
	c.fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": string(make([]rune, 101))})
	c.fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": "ok", "member_ids": []int64{987654321}})
	c.fails(400, "bad_request", "POST", "/api/rooms", map[string]any{"name": "ok", "member_ids": "all"})
	c.fails(400, "bad_request", "POST", "/api/rooms", map[string]any{"name": "ok", "secret": 1})
	n.anon(t).fails(401, "unauthorized", "POST", "/api/rooms", map[string]any{"name": "ok"})
	if len(c.myRoles()) != 0 {
		t.Fatal("a rejected create left a room behind")
	}
}

func TestPasswordRoomJoin(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, guest := n.user(t, "Owner"), n.user(t, "Guest")
	room := owner.createRoom(map[string]any{"name": "Book club", "password": "open sesame"})
	if !room.HasPassword {
		t.Fatalf("room %+v should say it has a password", room)
	}
	jp := urlf("/api/rooms/%d/join", room.ID)
	guest.fails(403, "wrong_password", "POST", jp, nil)
	guest.fails(403, "wrong_password", "POST", jp, map[string]any{"password": "open sesame!"})
	guest.fails(400, "bad_request", "POST", jp, `{"password":`)
	n.mirrored(t, room.ID, map[int64]bool{guest.id: false})
	var v roomView
	guest.must(200, "POST", jp, map[string]any{"password": "open sesame"}, &v)
	if v.Role != "member" || v.MemberCount != 2 {
		t.Fatalf("after joining: %+v", v)
	}
	guest.must(200, "POST", jp, nil, nil) // already a member: no password asked again
	n.mirrored(t, room.ID, map[int64]bool{guest.id: true})

	// Clearing the password opens the room.
	owner.must(200, "PATCH", urlf("/api/rooms/%d", room.ID), map[string]any{"password": ""}, &v)
	if v.HasPassword {
		t.Fatal("password was not cleared")
	}
	n.user(t, "Walkin").must(200, "POST", jp, nil, nil)
}

func TestDirectRooms(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	var a, again, b roomView
	alice.must(201, "POST", "/api/rooms/direct", map[string]any{"user_id": bob.id}, &a)
	alice.must(200, "POST", "/api/rooms/direct", map[string]any{"user_id": bob.id}, &again)
	bob.must(200, "POST", "/api/rooms/direct", map[string]any{"user_id": alice.id}, &b)
	if a.ID != again.ID || a.ID != b.ID {
		t.Fatalf("1:1 rooms differ: %d, %d, %d", a.ID, again.ID, b.ID)
	}
	if !a.Direct || a.MemberCount != 2 || a.Name != "Bob" || b.Name != "Alice" {
		t.Fatalf("1:1 room as alice sees it %+v, as bob %+v; each should see the other's name", a, b)
	}
	n.mirrored(t, a.ID, map[int64]bool{alice.id: true, bob.id: true})
	alice.fails(400, "validation", "POST", "/api/rooms/direct", map[string]any{"user_id": alice.id})
	alice.fails(404, "not_found", "POST", "/api/rooms/direct", map[string]any{"user_id": 987654321})
	alice.fails(400, "validation", "POST", "/api/rooms/direct", map[string]any{})
	n.user(t, "Eve").fails(403, "forbidden", "POST", urlf("/api/rooms/%d/join", a.ID), nil)
	alice.fails(403, "forbidden", "PATCH", urlf("/api/rooms/%d", a.ID), map[string]any{"name": "x"})
	var s roomList
	alice.must(200, "GET", "/api/rooms/search?q=bob", nil, &s)
	if len(s.Rooms) != 0 {
		t.Fatalf("search lists 1:1 rooms: %+v", s)
	}
}

func TestRoomSearch(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.user(t, "Searcher")
	want := map[int64]bool{}
	for i := 0; i < 5; i++ {
		want[c.createRoom(map[string]any{"name": "Tennis Club " + strconv.Itoa(i)}).ID] = true
	}
	c.createRoom(map[string]any{"name": "Chess"})
	locked := c.createRoom(map[string]any{"name": "tennis (private)", "password": "tennis-pw"})
	want[locked.ID] = true
	c.createRoom(map[string]any{"name": "100% fun_zone"})

	stranger := n.user(t, "Stranger")
	seen := map[int64]bool{}
	cursor, pages := "", 0
	for {
		var page roomList
		stranger.must(200, "GET", "/api/rooms/search?limit=4&q=TENNIS&cursor="+cursor, nil, &page)
		pages++
		for _, r := range page.Rooms {
			if seen[r.ID] {
				t.Fatalf("room %d appears on two pages", r.ID)
			}
			seen[r.ID] = true
			if r.Role != "" {
				t.Fatalf("stranger has role %q in %+v", r.Role, r)
			}
			if r.ID == locked.ID && !r.HasPassword {
				t.Fatal("password room listed without has_password")
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != len(want) || pages != 2 {
		t.Fatalf("found %v in %d pages, want %v in 2", seen, pages, want)
	}
	for id := range want {
		if !seen[id] {
			t.Fatalf("room %d missing from search", id)
		}
	}

	literal := func(q string) []roomView {
		var page roomList
		stranger.must(200, "GET", "/api/rooms/search?q="+url.QueryEscape(q), nil, &page)
		return page.Rooms
	}
	if rs := literal("%"); len(rs) != 1 || rs[0].Name != "100% fun_zone" {
		t.Fatalf("%% must match literally, got %+v", rs)
	}
	if rs := literal("n_z"); len(rs) != 1 {
		t.Fatalf("_ must match literally, got %+v", rs)
	}
	for _, q := range []string{"' OR 1=1 --", `"; DROP TABLE rooms; --`, `\`, "!", "%' UNION SELECT password_hash FROM users --"} {
		if rs := literal(q); len(rs) != 0 {
			t.Fatalf("search %q found %+v", q, rs)
		}
	}
	if rs := literal(""); len(rs) != 8 {
		t.Fatalf("empty q should list all 8 group rooms, got %d", len(rs))
	}
	stranger.fails(400, "validation", "GET", "/api/rooms/search?q="+url.QueryEscape(string(make([]rune, 101))), nil)
	stranger.fails(400, "validation", "GET", "/api/rooms/search?limit=0", nil)
	stranger.fails(400, "validation", "GET", "/api/rooms/search?limit=101", nil)
	stranger.fails(400, "validation", "GET", "/api/rooms/search?limit=ten", nil)
	stranger.fails(400, "validation", "GET", "/api/rooms/search?cursor=zzz", nil)
}
