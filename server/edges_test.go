package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

var _ = alsoOn(onMemory, TestKickBansUntilLifted)

// TestKickBansUntilLifted: a kicked member rejoined an open room at once.
// Now a kick bans; admins list and lift bans; the kicked socket is told.
func TestKickBansUntilLifted(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, admin, kicked, member := n.user(t, "Owner"), n.user(t, "Admin"), n.user(t, "Kicked"), n.user(t, "Member")
	open := owner.createRoom(map[string]any{"name": "Open", "member_ids": []int64{admin.id, kicked.id, member.id}})
	locked := owner.createRoom(map[string]any{"name": "Locked", "password": "the password", "member_ids": []int64{kicked.id}})
	owner.must(200, "PUT", urlf("/api/rooms/%d/members/%d/role", open.ID, admin.id), map[string]any{"role": "admin"}, nil)
	wk := n.connect(kicked)

	admin.must(204, "DELETE", urlf("/api/rooms/%d/members/%d", open.ID, kicked.id), nil, nil)
	if f := wk.await("removed"); f.Room != open.ID {
		t.Fatalf("the kicked socket got %+v, want removed from room %d", f, open.ID)
	}
	kicked.fails(403, "banned", "POST", urlf("/api/rooms/%d/join", open.ID), nil)
	owner.must(204, "DELETE", urlf("/api/rooms/%d/members/%d", locked.ID, kicked.id), nil, nil)
	kicked.fails(403, "banned", "POST", urlf("/api/rooms/%d/join", locked.ID), map[string]any{"password": "the password"})

	var bans struct {
		Bans []struct {
			UserID   int64 `json:"user_id"`
			BannedBy int64 `json:"banned_by"`
		} `json:"bans"`
	}
	admin.must(200, "GET", urlf("/api/rooms/%d/bans", open.ID), nil, &bans)
	if len(bans.Bans) != 1 || bans.Bans[0].UserID != kicked.id || bans.Bans[0].BannedBy != admin.id {
		t.Fatalf("bans %+v, want the kicked user banned by the admin", bans)
	}
	member.fails(403, "forbidden", "GET", urlf("/api/rooms/%d/bans", open.ID), nil)
	member.fails(403, "forbidden", "DELETE", urlf("/api/rooms/%d/bans/%d", open.ID, kicked.id), nil)
	kicked.fails(403, "not_member", "GET", urlf("/api/rooms/%d/bans", open.ID), nil)

	admin.must(204, "DELETE", urlf("/api/rooms/%d/bans/%d", open.ID, kicked.id), nil, nil)
	admin.fails(404, "not_found", "DELETE", urlf("/api/rooms/%d/bans/%d", open.ID, kicked.id), nil)
	kicked.must(200, "POST", urlf("/api/rooms/%d/join", open.ID), nil, nil)
	// Leaving is not a kick: it bans nobody.
	member.must(204, "POST", urlf("/api/rooms/%d/leave", open.ID), nil, nil)
	member.must(200, "POST", urlf("/api/rooms/%d/join", open.ID), nil, nil)
}

// TestStrictJSON: {"Amount":5} was read as amount, and the last of two
// equal keys won, on REST and WebSocket alike.
func TestStrictJSON(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	c := n.anon(t)
	for name, body := range map[string]string{
		"field name in another case": `{"Username":"strict_a","password":"password1","display_name":"A"}`,
		"long s folds to s":          `{"username":"strict_b","pa\u017fsword":"password1","display_name":"B"}`,
		"duplicate key":              `{"username":"strict_c","username":"strict_d","password":"password1","display_name":"C"}`,
	} {
		t.Run(name, func(t *testing.T) {
			c.t = t
			c.fails(400, "bad_request", "POST", "/api/auth/signup", body)
		})
	}
	c.t = t
	room := alice.createRoom(map[string]any{"name": "Strict"})
	alice.fails(400, "bad_request", "PATCH", urlf("/api/rooms/%d", room.ID), `{"name":"one","name":"two"}`)
	alice.fails(400, "bad_request", "POST", urlf("/api/rooms/%d/messages", room.ID), `{"cid":"x1","body":"a","Body":"b"}`)

	w := n.connect(alice)
	w.sendRaw([]byte(`{"type":"ping","type":"send","room":` + itoa(room.ID) + `,"cid":"dup","body":"smuggled"}`))
	if f := w.await("error"); f.Code != "bad_request" {
		t.Fatalf("a frame with two types: %+v, want an error frame bad_request", f)
	}
	w.sendRaw([]byte(`{"type":"send","room":` + itoa(room.ID) + `,"cid":"case","Body":"x","body":"y"}`))
	if f := w.await("error"); f.Code != "bad_request" {
		t.Fatalf("a frame with Body and body: %+v, want an error frame bad_request", f)
	}
	// Unknown fields are still ignored on the socket (protocol section 3).
	w.sendRaw([]byte(`{"type":"ping","future":1}`))
	w.await("pong")
	if f := w.say(room.ID, "ok", "fine"); f.Seq != 1 {
		t.Fatalf("a clean send after the refused ones: %+v, want seq 1: nothing smuggled before it", f)
	}
}

// TestNamesAndBodiesRefuseInvisibleCharacters: right-to-left overrides and
// zero-width characters were accepted in names, NUL in bodies.
func TestNamesAndBodiesRefuseInvisibleCharacters(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.anon(t)
	signup := func(name string) (int, []byte) {
		return c.raw("POST", "/api/auth/signup", map[string]any{"username": randomName("n_"), "password": "password1", "display_name": name})
	}
	for _, bad := range []string{"admin\u202egnp.exe", "ad\u200bmin", "\u2066x\u2069", "a\u2028b", "bo\u00adb", "x\ufeff", "\ue000"} {
		if s, b := signup(bad); s != 400 {
			t.Errorf("display name %q: %d %s, want 400", bad, s, b)
		}
	}
	for _, good := range []string{"김민지", "👨\u200d👩\u200d👧 family", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "José ❤\ufe0f", "م\u200cن"} {
		if s, b := signup(good); s != 201 {
			t.Errorf("display name %q: %d %s, want 201", good, s, b)
		}
	}
	alice := n.user(t, "Alice")
	alice.fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": "club\u202e"})
	room := alice.createRoom(map[string]any{"name": "등산 모임 🏔"})
	alice.fails(400, "validation", "PATCH", urlf("/api/rooms/%d", room.ID), map[string]any{"name": "\u200b"})
	mp := urlf("/api/rooms/%d/messages", room.ID)
	alice.fails(400, "validation", "POST", mp, map[string]any{"cid": "n1", "body": "a\x00b"})
	alice.fails(400, "validation", "POST", mp, map[string]any{"cid": "n2", "body": "\x1b[31mred"})
	w := n.connect(alice)
	w.send(map[string]any{"type": "send", "room": room.ID, "cid": "w1", "body": "bell\x07"})
	if f := w.await("error"); f.Code != "validation" {
		t.Fatalf("a body with BEL: %+v", f)
	}
	if f := w.say(room.ID, "w2", "line one\n\tline two"); f.Type != "ack" {
		t.Fatalf("newline and tab: %+v", f)
	}
}

// TestTokensCanBeRevoked: ?token= worked on every route; there was no
// logout or password change; a deleted user's token still worked.
func TestTokensCanBeRevoked(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	var me struct{ Username string }
	alice.must(200, "GET", "/api/me", nil, &me)

	anon := n.anon(t)
	anon.fails(401, "unauthorized", "GET", "/api/me?token="+alice.token, nil)
	n.connect(alice) // ?token= is still how a browser opens /ws

	login := func(password string) *client {
		c := n.anon(t)
		var l struct{ Token string }
		c.must(200, "POST", "/api/auth/login", map[string]any{"username": me.Username, "password": password}, &l)
		c.token, c.id = l.Token, alice.id
		return c
	}
	phone, laptop := login("password1"), login("password1")
	phone.must(204, "POST", "/api/auth/logout", nil, nil)
	phone.fails(401, "unauthorized", "GET", "/api/me", nil)
	if _, _, _, err := ws.Dial(context.Background(), n.wsURL()+"?token="+phone.token); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("upgrade with a logged-out token: %v, want 401", err)
	}
	laptop.must(200, "GET", "/api/me", nil, nil)

	laptop.fails(403, "wrong_password", "PUT", "/api/me/password", map[string]any{"current_password": "nope-nope", "new_password": "password2"})
	laptop.fails(400, "validation", "PUT", "/api/me/password", map[string]any{"current_password": "password1", "new_password": "short"})
	var fresh struct{ Token string }
	laptop.must(200, "PUT", "/api/me/password", map[string]any{"current_password": "password1", "new_password": "password2"}, &fresh)
	laptop.fails(401, "unauthorized", "GET", "/api/me", nil)
	alice.fails(401, "unauthorized", "GET", "/api/me", nil)
	laptop.token = fresh.Token
	laptop.must(200, "GET", "/api/me", nil, nil)
	n.anon(t).fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": me.Username, "password": "password1"})
	login("password2")

	// Another node on the same database sees the revocation too.
	second := n.cfg
	second.DataDir, second.NodeID = t.TempDir(), "second"
	other := startTestNode(t, second)
	ghost := n.user(t, "Ghost")
	ghost.base = other.url
	ghost.must(200, "GET", "/api/me", nil, nil)
	if err := n.backends.sql.Exec("DELETE FROM users WHERE id = ?", ghost.id).Error; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted user's token to stop working on the other node", func() bool {
		s, _ := ghost.raw("GET", "/api/me", nil)
		return s == 401
	})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
