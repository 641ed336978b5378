package accounts_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
	"moim/internal/testkit"
	"moim/limit"
	"moim/sqldb"
)

// serve starts the account routes on a fresh MariaDB database (the real
// server named by MOIM_TEST_MYSQL_DSN), with no limits, and returns their
// base URL.
func serve(t *testing.T) string {
	t.Helper()
	return serveLimited(t, limit.NewMemory(), accounts.Limits{})
}

// serveLimited is serve with the limits rules counted in lim.
func serveLimited(t *testing.T, lim limit.Limiter, rules accounts.Limits) string {
	t.Helper()
	dsn := testkit.CreateDatabase(t, testkit.ServiceURL(t, testkit.EnvMySQL, "MariaDB/MySQL"), " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	db, err := sqldb.OpenMySQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			_ = s.Close()
		}
	})
	tokens := accounts.NewTokens([]byte("test-secret-test-secret-test-secret-0123456789"), 24*time.Hour)
	acc, err := accounts.New(db, lim, rules, tokens, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Migrate(); err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.New(slog.DiscardHandler))})
	acc.Routes(app.Group("/api"), tokens.Require())
	return testkit.Serve(t, app)
}

func TestSignupLoginAndMe(t *testing.T) {
	base := serve(t)
	c := testkit.Anon(t, base)
	var u struct {
		ID          int64  `json:"id"`
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
	}
	c.Must(201, "POST", "/api/auth/signup", map[string]any{"username": "Min-Ji.Kim", "password": "password1", "display_name": " 김민지 "}, &u)
	if u.ID <= 0 || u.Username != "min-ji.kim" || u.DisplayName != "김민지" {
		t.Fatalf("signup returned %+v; want a new id, the lower-cased username and the trimmed Korean name", u)
	}
	c.Fails(409, "username_taken", "POST", "/api/auth/signup", map[string]any{"username": "MIN-JI.KIM", "password": "password2", "display_name": "x"})

	var login struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	c.Must(200, "POST", "/api/auth/login", map[string]any{"username": "min-ji.kim", "password": "password1"}, &login)
	exp, err := time.Parse(time.RFC3339, login.ExpiresAt)
	if err != nil || login.Token == "" || login.User.ID != u.ID {
		t.Fatalf("login returned %+v", login)
	}
	if d := time.Until(exp); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("token expires in %s; want about 24h", d)
	}

	wrong := c.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "min-ji.kim", "password": "password2"})
	unknown := c.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "nobody", "password": "password1"})
	if wrong != unknown {
		t.Fatalf("wrong password says %q but unknown user says %q: that tells an attacker which usernames exist", wrong, unknown)
	}

	c.Token = login.Token
	var me struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	c.Must(200, "GET", "/api/me", nil, &me)
	if me.ID != u.ID || me.Username != "min-ji.kim" {
		t.Fatalf("/api/me = %+v, want user %d", me, u.ID)
	}
	if _, raw := c.Raw("GET", "/api/me", nil); strings.Contains(string(raw), "password") {
		t.Fatalf("/api/me leaks the password hash: %s", raw)
	}
}

func TestSignupRejectsBadInput(t *testing.T) {
	base := serve(t)
	c := testkit.Anon(t, base)
	ok := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"username": "valid_user", "password": "password1", "display_name": "Valid"}
		mod(m)
		return m
	}
	cases := []struct {
		name string
		body any
		code string
	}{
		{"short username", ok(func(m map[string]any) { m["username"] = "ab" }), "validation"},
		{"long username", ok(func(m map[string]any) { m["username"] = strings.Repeat("a", 33) }), "validation"},
		{"username with space", ok(func(m map[string]any) { m["username"] = "a b c" }), "validation"},
		{"username with hangul", ok(func(m map[string]any) { m["username"] = "민지민지" }), "validation"},
		{"short password", ok(func(m map[string]any) { m["password"] = "1234567" }), "validation"},
		{"password over 72 bytes", ok(func(m map[string]any) { m["password"] = strings.Repeat("가", 25) }), "validation"},
		{"empty display name", ok(func(m map[string]any) { m["display_name"] = "   " }), "validation"},
		{"display name of 65 runes", ok(func(m map[string]any) { m["display_name"] = strings.Repeat("가", 65) }), "validation"},
		{"display name with control char", ok(func(m map[string]any) { m["display_name"] = "a\x00b" }), "validation"},
		{"malformed JSON", `{"username":`, "bad_request"},
		{"not JSON", `username=a&password=b`, "bad_request"},
		{"unknown field", ok(func(m map[string]any) { m["admin"] = true }), "bad_request"},
		{"wrong type", ok(func(m map[string]any) { m["username"] = 42 }), "bad_request"},
		{"array body", `[1,2]`, "bad_request"},
		{"two objects", `{"username":"a"}{"username":"b"}`, "bad_request"},
		{"empty body", "", "bad_request"},
		{"null", "null", "validation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.T = t
			c.Fails(400, tc.code, "POST", "/api/auth/signup", tc.body)
		})
	}
	c.T = t
	// A 64-rune Korean name is 192 bytes: limits count characters.
	c.Must(201, "POST", "/api/auth/signup", ok(func(m map[string]any) { m["display_name"] = strings.Repeat("가", 64) }), nil)
}

func TestContacts(t *testing.T) {
	base := serve(t)
	alice, bob, carol := testkit.Signup(t, base, "Alice"), testkit.Signup(t, base, "Bob"), testkit.Signup(t, base, "Carol")
	var u struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	var bobMe, carolMe struct{ Username string }
	bob.Must(200, "GET", "/api/me", nil, &bobMe)
	carol.Must(200, "GET", "/api/me", nil, &carolMe)
	alice.Must(201, "POST", "/api/contacts", map[string]any{"username": bobMe.Username}, &u)
	if u.ID != bob.ID {
		t.Fatalf("added contact %+v, want user %d", u, bob.ID)
	}
	alice.Must(200, "POST", "/api/contacts", map[string]any{"username": bobMe.Username}, nil)
	alice.Must(201, "POST", "/api/contacts", map[string]any{"username": carolMe.Username}, nil)
	// Ids are refused: walking them listed every user's name (issue 19).
	alice.Fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"user_id": bob.ID})
	alice.Fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"user_id": bob.ID, "username": carolMe.Username})
	alice.Fails(400, "validation", "POST", "/api/contacts", map[string]any{"username": ""})
	var aliceMe struct{ Username string }
	alice.Must(200, "GET", "/api/me", nil, &aliceMe)
	alice.Fails(400, "validation", "POST", "/api/contacts", map[string]any{"username": aliceMe.Username})
	alice.Fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": "no_such_user"})
	// Exact usernames only: a prefix or a pattern finds nobody.
	alice.Fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": bobMe.Username[:6]})
	alice.Fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": "u_%"})
	alice.Fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"username": 42})

	var list struct {
		Contacts []struct {
			ID int64 `json:"id"`
		} `json:"contacts"`
	}
	alice.Must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 2 {
		t.Fatalf("alice has %d contacts, want 2: %+v", len(list.Contacts), list)
	}
	bob.Must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 0 {
		t.Fatalf("contacts are one-way, but bob sees %+v", list)
	}
	alice.Must(204, "DELETE", fmt.Sprintf("/api/contacts/%d", bob.ID), nil, nil)
	alice.Fails(404, "not_found", "DELETE", fmt.Sprintf("/api/contacts/%d", bob.ID), nil)
	alice.Fails(400, "bad_request", "DELETE", "/api/contacts/abc", nil)
	alice.Must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 1 || list.Contacts[0].ID != carol.ID {
		t.Fatalf("after removing bob, contacts are %+v", list)
	}
	testkit.Anon(t, base).Fails(401, "unauthorized", "GET", "/api/contacts", nil)
}
