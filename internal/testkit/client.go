package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"moim/internal/apiclient"
)

// Password is the password Signup gives every user.
const Password = "password1"

// Client is an apiclient.Client bound to a test: a transport failure or
// an unexpected status fails the test.
type Client struct {
	T testing.TB
	*apiclient.Client
}

// Anon is an anonymous client of the node at base.
func Anon(t testing.TB, base string) *Client {
	return &Client{T: t, Client: &apiclient.Client{Base: base}}
}

// Signup signs up a fresh user (u_ and random digits, Password) with the
// display name and logs them in.
func Signup(t testing.TB, base, displayName string) *Client {
	t.Helper()
	c := Anon(t, base)
	username := RandomName("u_")
	var u struct{ ID int64 }
	c.Must(201, "POST", "/api/auth/signup", map[string]any{"username": username, "password": Password, "display_name": displayName}, &u)
	if err := c.Login(context.Background(), username, Password); err != nil {
		t.Fatal(err)
	}
	return c
}

// Raw sends body (JSON unless a string or []byte) and returns the status
// and the answer.
func (c *Client) Raw(method, path string, body any) (int, []byte) {
	c.T.Helper()
	a := c.Exchange(method, path, body)
	return a.Status, a.Body
}

// Exchange is Raw with the answer's headers.
func (c *Client) Exchange(method, path string, body any) *apiclient.Answer {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := c.Client.Exchange(ctx, method, path, body)
	if err != nil {
		c.T.Fatal(err)
	}
	return a
}

// Must fails the test unless the status is want, and decodes the answer
// into out when it is not nil.
func (c *Client) Must(want int, method, path string, body, out any) {
	c.T.Helper()
	status, raw := c.Raw(method, path, body)
	if status != want {
		c.T.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.T.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
}

// Fails asserts a request fails with status and code in the one error
// shape, with a human message and no internals, and returns the message.
func (c *Client) Fails(status int, code, method, path string, body any) string {
	c.T.Helper()
	got, raw := c.Raw(method, path, body)
	var e apiclient.ErrorBody
	if err := json.Unmarshal(raw, &e); err != nil {
		c.T.Fatalf("%s %s: error body is not JSON: %q", method, path, raw)
	}
	if got != status || e.Error.Code != code {
		c.T.Fatalf("%s %s: got %d %q, want %d %q: %s", method, path, got, e.Error.Code, status, code, raw)
	}
	if e.Error.Message == "" || strings.Contains(string(raw), "goroutine") || strings.Contains(string(raw), ".go:") {
		c.T.Fatalf("%s %s: error message empty or leaks internals: %s", method, path, raw)
	}
	return e.Error.Message
}

// Metrics reads the node's /metrics.
func (c *Client) Metrics() apiclient.Metrics {
	c.T.Helper()
	m, err := c.Client.Metrics(context.Background())
	if err != nil {
		c.T.Fatal(err)
	}
	return m
}

// From is a copy of c whose requests come from another loopback address
// (ip, such as 127.0.0.2), for limits counted per client address.
func (c *Client) From(ip string) *Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	k := *c.Client
	k.HTTP = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return &Client{T: c.T, Client: &k}
}

// Parallel sends the same request count times at once and counts the
// answers by status (0 for a transport failure).
func (c *Client) Parallel(count int, method, path string, body any) map[int]int {
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range count {
		wg.Go(func() {
			<-start
			status := 0
			if a, err := c.Client.Exchange(context.Background(), method, path, body); err == nil {
				status = a.Status
			}
			mu.Lock()
			got[status]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return got
}

// RetryAfter asks for a 429 and returns its Retry-After in seconds.
func (c *Client) RetryAfter(method, path string, body any) int {
	c.T.Helper()
	a := c.Exchange(method, path, body)
	secs, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if a.Status != 429 || err != nil || secs < 1 {
		c.T.Fatalf("%s %s: %d with Retry-After %q, want 429 and a number of seconds", method, path, a.Status, a.Header.Get("Retry-After"))
	}
	return secs
}

// Roles is c's role in each of their rooms, from their room list.
func (c *Client) Roles() map[int64]string {
	c.T.Helper()
	var l apiclient.RoomList
	c.Must(200, "GET", "/api/rooms", nil, &l)
	roles := map[int64]string{}
	for _, r := range l.Rooms {
		roles[r.ID] = r.Role
	}
	return roles
}

// InviteLink makes an invite link into room as c.
func (c *Client) InviteLink(room int64, body map[string]any) apiclient.InviteLink {
	c.T.Helper()
	var l apiclient.InviteLink
	c.Must(201, "POST", fmt.Sprintf("/api/rooms/%d/invite-links", room), body, &l)
	return l
}

// JoinPath is the path that joins a room by its invite link code.
func JoinPath(code string) string { return "/api/invite-links/" + code + "/join" }
