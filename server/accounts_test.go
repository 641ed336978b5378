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
