package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// user is a signed-up account with its token.
type user struct {
	base, token, username string
	id                    int64
}

func signup(t *testing.T, base, name string) *user {
	t.Helper()
	username := "u_" + randomName("")
	u := &user{base: base, username: username}
	var created struct{ ID int64 }
	u.do(t, 201, "POST", "/api/auth/signup", map[string]any{"username": username, "password": "password1", "display_name": name}, &created)
	var login struct{ Token string }
	u.do(t, 200, "POST", "/api/auth/login", map[string]any{"username": username, "password": "password1"}, &login)
	u.id, u.token = created.ID, login.Token
	return u
}

func (u *user) do(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, raw, err)
		}
	}
}

// wsConn is one WebSocket client; the test reads and writes it from one
// goroutine.
type wsConn struct {
	conn net.Conn
	r    io.Reader
}

type wsFrame struct {
	Type string
	Room int64
	From int64
	CID  string
	Code string
	User int64
}

func dialWS(t *testing.T, base string, u *user) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {base}})}
	conn, br, _, err := d.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+url.QueryEscape(u.token))
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsConn{conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	c.await(t, "ready", func(f wsFrame) bool { return f.Type == "ready" && f.User == u.id })
	return c
}

func (c *wsConn) send(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(c.conn, b); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
}

// await reads frames (answering pings) until done says so, for at most 15 s.
func (c *wsConn) await(t *testing.T, what string, done func(wsFrame) bool) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	rw := struct {
		io.Reader
		io.Writer
	}{c.r, c.conn}
	for {
		data, err := wsutil.ReadServerText(rw)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		if done(f) {
			return
		}
	}
}
