package rooms_test

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"moim/internal/testkit"
	"moim/rooms"
)

func TestRoomLifecycleAndRoles(t *testing.T) {
	s := serve(t, rooms.JoinLimits{})
	owner, admin, member, outsider := s.User(t, "Owner"), s.User(t, "Admin"), s.User(t, "Member"), s.User(t, "Outsider")

	room := s.CreateRoom(owner, map[string]any{"name": "  등산 모임  ", "description": "Saturday hikes", "member_ids": []int64{admin.ID, member.ID, admin.ID, owner.ID}})
	if room.Name != "등산 모임" || room.OwnerID != owner.ID || room.MemberCount != 3 || room.Role != "owner" || room.HasPassword {
		t.Fatalf("created room %+v", room)
	}
	if r := member.Roles()[room.ID]; r != "member" {
		t.Fatalf("member sees role %q in GET /api/rooms", r)
	}
	if _, ok := outsider.Roles()[room.ID]; ok {
		t.Fatal("outsider sees the room in their list")
	}
	s.Mirrored(t, room.ID, map[int64]bool{owner.ID: true, admin.ID: true, member.ID: true, outsider.ID: false})

	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	member.Must(200, "GET", rp, nil, nil)
	outsider.Fails(403, "not_member", "GET", rp, nil)
	outsider.Fails(403, "not_member", "GET", rp+"/members", nil)
	owner.Fails(404, "not_found", "GET", "/api/rooms/999999999", nil)
	owner.Fails(400, "bad_request", "GET", "/api/rooms/abc", nil)
	owner.Fails(400, "bad_request", "GET", "/api/rooms/-1", nil)

	// Roles: only the owner promotes.
	admin.Fails(403, "forbidden", "PUT", rp+fmt.Sprintf("/members/%d/role", member.ID), map[string]any{"role": "admin"})
	owner.Fails(400, "validation", "PUT", rp+fmt.Sprintf("/members/%d/role", admin.ID), map[string]any{"role": "king"})
	owner.Fails(400, "validation", "PUT", rp+fmt.Sprintf("/members/%d/role", owner.ID), map[string]any{"role": "member"})
	owner.Fails(404, "not_found", "PUT", rp+fmt.Sprintf("/members/%d/role", outsider.ID), map[string]any{"role": "admin"})
	var mv struct {
		UserID int64  `json:"user_id"`
		Role   string `json:"role"`
	}
	owner.Must(200, "PUT", rp+fmt.Sprintf("/members/%d/role", admin.ID), map[string]any{"role": "admin"}, &mv)
	if mv.UserID != admin.ID || mv.Role != "admin" {
		t.Fatalf("set role returned %+v", mv)
	}

	// Patch: admins yes, members no.
	member.Fails(403, "forbidden", "PATCH", rp, map[string]any{"name": "mine now"})
	admin.Fails(400, "validation", "PATCH", rp, map[string]any{"name": ""})
	admin.Fails(400, "bad_request", "PATCH", rp, map[string]any{"owner_id": member.ID})
	var patched roomView
	admin.Must(200, "PATCH", rp, map[string]any{"description": "Sunday hikes"}, &patched)
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
	member.Must(200, "GET", rp+"/members", nil, &members)
	roles := map[int64]string{}
	for _, m := range members.Members {
		roles[m.UserID] = m.Role
	}
	if len(roles) != 3 || roles[owner.ID] != "owner" || roles[admin.ID] != "admin" || roles[member.ID] != "member" {
		t.Fatalf("members = %+v", members)
	}

	// Kicks: a member cannot, an admin can kick members but not admins or the owner.
	other := s.User(t, "Other")
	other.Must(200, "POST", rp+"/join", nil, nil)
	member.Fails(403, "forbidden", "DELETE", rp+fmt.Sprintf("/members/%d", other.ID), nil)
	admin.Fails(403, "forbidden", "DELETE", rp+fmt.Sprintf("/members/%d", owner.ID), nil)
	owner.Must(200, "PUT", rp+fmt.Sprintf("/members/%d/role", other.ID), map[string]any{"role": "admin"}, nil)
	admin.Fails(403, "forbidden", "DELETE", rp+fmt.Sprintf("/members/%d", other.ID), nil)
	owner.Must(200, "PUT", rp+fmt.Sprintf("/members/%d/role", other.ID), map[string]any{"role": "member"}, nil)
	admin.Must(204, "DELETE", rp+fmt.Sprintf("/members/%d", other.ID), nil, nil)
	admin.Fails(404, "not_found", "DELETE", rp+fmt.Sprintf("/members/%d", other.ID), nil)
	admin.Fails(400, "validation", "DELETE", rp+fmt.Sprintf("/members/%d", admin.ID), nil)
	other.Fails(403, "not_member", "GET", rp, nil)
	s.Mirrored(t, room.ID, map[int64]bool{other.ID: false})

	// Leaving: members may, the owner may not.
	member.Must(204, "POST", rp+"/leave", nil, nil)
	member.Fails(403, "not_member", "POST", rp+"/leave", nil)
	owner.Fails(409, "owner_cannot_leave", "POST", rp+"/leave", nil)
	s.Mirrored(t, room.ID, map[int64]bool{member.ID: false, owner.ID: true})

	// Deleting: only the owner.
	admin.Fails(403, "forbidden", "DELETE", rp, nil)
	owner.Must(204, "DELETE", rp, nil, nil)
	owner.Fails(404, "not_found", "GET", rp, nil)
	admin.Fails(404, "not_found", "POST", rp+"/join", nil)
	s.Mirrored(t, room.ID, map[int64]bool{owner.ID: false, admin.ID: false})
}

func TestRoomCreateRejectsBadInput(t *testing.T) {
	s := serve(t, rooms.JoinLimits{})
	c := s.User(t, "Maker")
	c.Fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": ""})
	c.Fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": string(make([]rune, 101))})
	c.Fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": "ok", "member_ids": []int64{987654321}})
	c.Fails(400, "bad_request", "POST", "/api/rooms", map[string]any{"name": "ok", "member_ids": "all"})
	c.Fails(400, "bad_request", "POST", "/api/rooms", map[string]any{"name": "ok", "secret": 1})
	testkit.Anon(t, s.Base).Fails(401, "unauthorized", "POST", "/api/rooms", map[string]any{"name": "ok"})
	if len(c.Roles()) != 0 {
		t.Fatal("a rejected create left a room behind")
	}
}

func TestPasswordRoomJoin(t *testing.T) {
	s := serve(t, rooms.JoinLimits{})
	owner, guest := s.User(t, "Owner"), s.User(t, "Guest")
	room := s.CreateRoom(owner, map[string]any{"name": "Book club", "password": "open sesame"})
	if !room.HasPassword {
		t.Fatalf("room %+v should say it has a password", room)
	}
	jp := fmt.Sprintf("/api/rooms/%d/join", room.ID)
	guest.Fails(403, "wrong_password", "POST", jp, nil)
	guest.Fails(403, "wrong_password", "POST", jp, map[string]any{"password": "open sesame!"})
	guest.Fails(400, "bad_request", "POST", jp, `{"password":`)
	s.Mirrored(t, room.ID, map[int64]bool{guest.ID: false})
	var v roomView
	guest.Must(200, "POST", jp, map[string]any{"password": "open sesame"}, &v)
	if v.Role != "member" || v.MemberCount != 2 {
		t.Fatalf("after joining: %+v", v)
	}
	guest.Must(200, "POST", jp, nil, nil) // already a member: no password asked again
	s.Mirrored(t, room.ID, map[int64]bool{guest.ID: true})

	// Clearing the password opens the room.
	owner.Must(200, "PATCH", fmt.Sprintf("/api/rooms/%d", room.ID), map[string]any{"password": ""}, &v)
	if v.HasPassword {
		t.Fatal("password was not cleared")
	}
	s.User(t, "Walkin").Must(200, "POST", jp, nil, nil)
}

func TestDirectRooms(t *testing.T) {
	s := serve(t, rooms.JoinLimits{})
	alice, bob := s.User(t, "Alice"), s.User(t, "Bob")
	var a, again, b roomView
	alice.Must(201, "POST", "/api/rooms/direct", map[string]any{"user_id": bob.ID}, &a)
	alice.Must(200, "POST", "/api/rooms/direct", map[string]any{"user_id": bob.ID}, &again)
	bob.Must(200, "POST", "/api/rooms/direct", map[string]any{"user_id": alice.ID}, &b)
	if a.ID != again.ID || a.ID != b.ID {
		t.Fatalf("1:1 rooms differ: %d, %d, %d", a.ID, again.ID, b.ID)
	}
	if !a.Direct || a.MemberCount != 2 || a.Name != "Bob" || b.Name != "Alice" {
		t.Fatalf("1:1 room as alice sees it %+v, as bob %+v; each should see the other's name", a, b)
	}
	s.Mirrored(t, a.ID, map[int64]bool{alice.ID: true, bob.ID: true})
	alice.Fails(400, "validation", "POST", "/api/rooms/direct", map[string]any{"user_id": alice.ID})
	alice.Fails(404, "not_found", "POST", "/api/rooms/direct", map[string]any{"user_id": 987654321})
	alice.Fails(400, "validation", "POST", "/api/rooms/direct", map[string]any{})
	s.User(t, "Eve").Fails(403, "forbidden", "POST", fmt.Sprintf("/api/rooms/%d/join", a.ID), nil)
	alice.Fails(403, "forbidden", "PATCH", fmt.Sprintf("/api/rooms/%d", a.ID), map[string]any{"name": "x"})
	var found roomList
	alice.Must(200, "GET", "/api/rooms/search?q=bob", nil, &found)
	if len(found.Rooms) != 0 {
		t.Fatalf("search lists 1:1 rooms: %+v", found)
	}
}

func TestRoomSearch(t *testing.T) {
	s := serve(t, rooms.JoinLimits{})
	c := s.User(t, "Searcher")
	want := map[int64]bool{}
	for i := 0; i < 5; i++ {
		want[s.CreateRoom(c, map[string]any{"name": "Tennis Club " + strconv.Itoa(i)}).ID] = true
	}
	s.CreateRoom(c, map[string]any{"name": "Chess"})
	locked := s.CreateRoom(c, map[string]any{"name": "tennis (private)", "password": "tennis-pw"})
	want[locked.ID] = true
	s.CreateRoom(c, map[string]any{"name": "100% fun_zone"})

	stranger := s.User(t, "Stranger")
	seen := map[int64]bool{}
	cursor, pages := "", 0
	for {
		var page roomList
		stranger.Must(200, "GET", "/api/rooms/search?limit=4&q=TENNIS&cursor="+cursor, nil, &page)
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
		stranger.Must(200, "GET", "/api/rooms/search?q="+url.QueryEscape(q), nil, &page)
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
	stranger.Fails(400, "validation", "GET", "/api/rooms/search?q="+url.QueryEscape(string(make([]rune, 101))), nil)
	stranger.Fails(400, "validation", "GET", "/api/rooms/search?limit=0", nil)
	stranger.Fails(400, "validation", "GET", "/api/rooms/search?limit=101", nil)
	stranger.Fails(400, "validation", "GET", "/api/rooms/search?limit=ten", nil)
	stranger.Fails(400, "validation", "GET", "/api/rooms/search?cursor=zzz", nil)
}
