package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"moim/accounts"
	"moim/limit"
)

func TestSignupLoginAndMe(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.anon(t)
	var u struct {
		ID          int64  `json:"id"`
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
	}
	c.must(201, "POST", "/api/auth/signup", map[string]any{"username": "Min-Ji.Kim", "password": "password1", "display_name": " 김민지 "}, &u)
	if u.ID <= 0 || u.Username != "min-ji.kim" || u.DisplayName != "김민지" {
		t.Fatalf("signup returned %+v; want a new id, the lower-cased username and the trimmed Korean name", u)
	}
	c.fails(409, "username_taken", "POST", "/api/auth/signup", map[string]any{"username": "MIN-JI.KIM", "password": "password2", "display_name": "x"})

	var login struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": "min-ji.kim", "password": "password1"}, &login)
	exp, err := time.Parse(time.RFC3339, login.ExpiresAt)
	if err != nil || login.Token == "" || login.User.ID != u.ID {
		t.Fatalf("login returned %+v", login)
	}
	if d := time.Until(exp); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("token expires in %s; want about 24h", d)
	}

	wrong := c.fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "min-ji.kim", "password": "password2"})
	unknown := c.fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "nobody", "password": "password1"})
	if wrong != unknown {
		t.Fatalf("wrong password says %q but unknown user says %q: that tells an attacker which usernames exist", wrong, unknown)
	}

	c.token = login.Token
	var me struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	c.must(200, "GET", "/api/me", nil, &me)
	if me.ID != u.ID || me.Username != "min-ji.kim" {
		t.Fatalf("/api/me = %+v, want user %d", me, u.ID)
	}
	if _, raw := c.raw("GET", "/api/me", nil); strings.Contains(string(raw), "password") {
		t.Fatalf("/api/me leaks the password hash: %s", raw)
	}
}

func TestSignupRejectsBadInput(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.anon(t)
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
			c.t = t
			c.fails(400, tc.code, "POST", "/api/auth/signup", tc.body)
		})
	}
	c.t = t
	// A 64-rune Korean name is 192 bytes: limits count characters.
	c.must(201, "POST", "/api/auth/signup", ok(func(m map[string]any) { m["display_name"] = strings.Repeat("가", 64) }), nil)
}

func TestTokensThatMustNotWork(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	sign := func(method jwt.SigningMethod, key any, claims jwt.RegisteredClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sub := strconv.FormatInt(alice.id, 10)
	valid := jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
	expired, _, err := accounts.NewTokens([]byte(testSecret), -time.Minute).Issue(alice.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(alice.token, ".")
	otherPayload := strings.Split(sign(jwt.SigningMethodHS256, []byte("x"), jwt.RegisteredClaims{Subject: "999999", ExpiresAt: valid.ExpiresAt}), ".")[1]
	cases := map[string]string{
		"signed with another secret": sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-0000"), valid),
		"payload swapped":            parts[0] + "." + otherPayload + "." + parts[2],
		"expired":                    expired,
		"alg none":                   sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"alg HS512 with our secret":  sign(jwt.SigningMethodHS512, []byte(testSecret), valid),
		"no expiry":                  sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{Subject: sub}),
		"subject not a number":       sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{Subject: "alice", ExpiresAt: valid.ExpiresAt}),
		"garbage":                    "not.a.token",
		"empty":                      "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c := n.anon(t)
			c.token = tok
			c.fails(401, "unauthorized", "GET", "/api/me", nil)
			c.fails(401, "unauthorized", "GET", "/api/rooms", nil)
		})
	}
	// The good token still works, so the failures above are the token's.
	alice.must(200, "GET", "/api/me", nil, nil)
}

// from is an anonymous client whose requests come from another loopback
// address.
func from(t *testing.T, n *testNode, ip string) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := n.anon(t)
	c.http = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return c
}

// retryAfter asks for a 429 and returns its Retry-After in seconds.
func retryAfter(t *testing.T, n *testNode, method, path string, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, n.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || err != nil || secs < 1 {
		t.Fatalf("%s %s: %d with Retry-After %q, want 429 and a number of seconds", method, path, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	return secs
}

func TestLoginAndSignupLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.LoginLimit = limit.Rule{N: 3, Window: 2 * time.Second}
	cfg.LoginAddressLimit = limit.Rule{N: 5, Window: time.Minute}
	cfg.SignupLimit = limit.Rule{N: 4, Window: time.Minute}
	n := startTestNode(t, cfg)
	c := n.anon(t)
	for _, u := range []string{"target", "bystander", "third"} {
		c.must(201, "POST", "/api/auth/signup", map[string]any{"username": u, "password": "password1", "display_name": u}, nil)
	}
	for i := range 3 {
		c.fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "guess" + strconv.Itoa(i) + "xxxx"})
	}
	// The username is locked, even for the right password, until its window ends.
	c.fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"})
	if s := retryAfter(t, n, "POST", "/api/auth/login", `{"username":"target","password":"password1"}`); s > 2 {
		t.Fatalf("Retry-After %d s for a 2 s window", s)
	}
	// Other users are not affected, and a success clears nothing of theirs.
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"}, nil)
	time.Sleep(2100 * time.Millisecond)
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"}, nil)

	// Guessing many usernames from one address: 5 failures per address.
	c.fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "third", "password": "nope-nope"})
	c.fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "ghost", "password": "nope-nope"})
	c.fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"})
	// Someone elsewhere still logs in.
	from(t, n, "127.0.0.2").must(200, "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"}, nil)

	// Sign-ups per address: the fourth is allowed, the fifth refused.
	c.must(201, "POST", "/api/auth/signup", map[string]any{"username": "fourth", "password": "password1", "display_name": "4"}, nil)
	c.fails(429, "rate_limited", "POST", "/api/auth/signup", map[string]any{"username": "fifth", "password": "password1", "display_name": "5"})
	retryAfter(t, n, "POST", "/api/auth/signup", `{"username":"sixth","password":"password1","display_name":"6"}`)
	from(t, n, "127.0.0.3").must(201, "POST", "/api/auth/signup", map[string]any{"username": "fifth", "password": "password1", "display_name": "5"}, nil)
}

// TestLimitsBehindATrustedProxy counts the address a trusted load
// balancer names, and ignores the header from anyone else.
func TestLimitsBehindATrustedProxy(t *testing.T) {
	cfg := testConfig(t)
	cfg.SignupLimit = limit.Rule{N: 1, Window: time.Minute}
	cfg.TrustedProxies = []string{"127.0.0.1"}
	n := startTestNode(t, cfg)
	signup := func(c *client, user string) (int, []byte) {
		return c.raw("POST", "/api/auth/signup", map[string]any{"username": user, "password": "password1", "display_name": user})
	}
	viaProxy := func(client string) *client {
		c := n.anon(t)
		c.header = http.Header{"X-Forwarded-For": {client + ", 127.0.0.1"}}
		return c
	}
	if s, b := signup(viaProxy("203.0.113.7"), "first"); s != 201 {
		t.Fatalf("first sign-up via the proxy: %d %s", s, b)
	}
	if s, _ := signup(viaProxy("203.0.113.7"), "second"); s != 429 {
		t.Fatalf("second sign-up from the same client behind the proxy: %d, want 429", s)
	}
	if s, b := signup(viaProxy("198.51.100.4"), "third"); s != 201 {
		t.Fatalf("another client behind the proxy: %d %s", s, b)
	}
	// Not a trusted proxy: its header is ignored and its own address counts.
	spoof := from(t, n, "127.0.0.4")
	spoof.header = http.Header{"X-Forwarded-For": {"192.0.2.1"}}
	if s, b := signup(spoof, "fourth"); s != 201 {
		t.Fatalf("untrusted peer's first sign-up: %d %s", s, b)
	}
	spoof.header = http.Header{"X-Forwarded-For": {"192.0.2.99"}}
	if s, _ := signup(spoof, "fifth"); s != 429 {
		t.Fatalf("an untrusted peer changed its X-Forwarded-For and got %d, want 429", s)
	}
}

func TestContacts(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Carol")
	var u struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	var bobMe, carolMe struct{ Username string }
	bob.must(200, "GET", "/api/me", nil, &bobMe)
	carol.must(200, "GET", "/api/me", nil, &carolMe)
	alice.must(201, "POST", "/api/contacts", map[string]any{"username": bobMe.Username}, &u)
	if u.ID != bob.id {
		t.Fatalf("added contact %+v, want user %d", u, bob.id)
	}
	alice.must(200, "POST", "/api/contacts", map[string]any{"username": bobMe.Username}, nil)
	alice.must(201, "POST", "/api/contacts", map[string]any{"username": carolMe.Username}, nil)
	// Ids are refused: walking them listed every user's name (issue 19).
	alice.fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"user_id": bob.id})
	alice.fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"user_id": bob.id, "username": carolMe.Username})
	alice.fails(400, "validation", "POST", "/api/contacts", map[string]any{"username": ""})
	var aliceMe struct{ Username string }
	alice.must(200, "GET", "/api/me", nil, &aliceMe)
	alice.fails(400, "validation", "POST", "/api/contacts", map[string]any{"username": aliceMe.Username})
	alice.fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": "no_such_user"})
	// Exact usernames only: a prefix or a pattern finds nobody.
	alice.fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": bobMe.Username[:6]})
	alice.fails(404, "not_found", "POST", "/api/contacts", map[string]any{"username": "u_%"})
	alice.fails(400, "bad_request", "POST", "/api/contacts", map[string]any{"username": 42})

	var list struct {
		Contacts []struct {
			ID int64 `json:"id"`
		} `json:"contacts"`
	}
	alice.must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 2 {
		t.Fatalf("alice has %d contacts, want 2: %+v", len(list.Contacts), list)
	}
	bob.must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 0 {
		t.Fatalf("contacts are one-way, but bob sees %+v", list)
	}
	alice.must(204, "DELETE", urlf("/api/contacts/%d", bob.id), nil, nil)
	alice.fails(404, "not_found", "DELETE", urlf("/api/contacts/%d", bob.id), nil)
	alice.fails(400, "bad_request", "DELETE", "/api/contacts/abc", nil)
	alice.must(200, "GET", "/api/contacts", nil, &list)
	if len(list.Contacts) != 1 || list.Contacts[0].ID != carol.id {
		t.Fatalf("after removing bob, contacts are %+v", list)
	}
	n.anon(t).fails(401, "unauthorized", "GET", "/api/contacts", nil)
}
