package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/hub"
)

// loginAgain logs c's user in once more: another device with its own token.
func (n *testNode) loginAgain(c *client) *client {
	c.t.Helper()
	d := n.anon(c.t)
	var l struct{ Token string }
	d.must(200, "POST", "/api/auth/login", map[string]any{"username": c.username, "password": "password1"}, &l)
	d.token, d.id, d.username = l.Token, c.id, c.username
	return d
}

var _ = alsoOn(onMemory, TestRevokedTokensCloseOpenSockets)

// TestRevokedTokensCloseOpenSockets is issue 19's item 6: an open
// WebSocket whose token is logged out, whose user changes password or
// whose user is deleted is closed with 4001, on every node, while the
// user's other tokens keep their sockets.
func TestRevokedTokensCloseOpenSockets(t *testing.T) {
	n := startTestNode(t, testConfig(t)) // rechecks every token each minute only

	nodes := []*testNode{n}
	if os.Getenv(envEngine) != "memory" {
		second := n.cfg
		second.DataDir, second.NodeID = t.TempDir(), "second"
		nodes = append(nodes, startTestNode(t, second))
	}
	alice := n.user(t, "Alice")
	phone, laptop := n.loginAgain(alice), n.loginAgain(alice)
	var phoneSocks []*wsClient
	for _, node := range nodes {
		phoneSocks = append(phoneSocks, node.connect(phone))
	}
	laptopSock := nodes[len(nodes)-1].connect(laptop)

	phone.must(204, "POST", "/api/auth/logout", nil, nil)
	for i, w := range phoneSocks {
		if code := w.closeCode(); code != hub.StatusTokenRevoked {
			t.Fatalf("logged-out socket on node %d closed with %d, want %d", i, code, hub.StatusTokenRevoked)
		}
	}
	laptopSock.send(map[string]any{"type": "ping"})
	if f := laptopSock.await("pong"); f.Type != "pong" {
		t.Fatal("the laptop's socket did not answer")
	}

	laptop.must(200, "PUT", "/api/me/password", map[string]any{"current_password": "password1", "new_password": "password2"}, nil)
	if code := laptopSock.closeCode(); code != hub.StatusTokenRevoked {
		t.Fatalf("socket after a password change closed with %d, want %d", code, hub.StatusTokenRevoked)
	}

	// Nobody says a deleted user is gone: the periodic check finds it.
	quick := n.cfg
	quick.DataDir, quick.NodeID, quick.TokenCheck = t.TempDir(), "quick", 200*time.Millisecond
	ghost := n.user(t, "Ghost")
	ghostSock := startTestNode(t, quick).connect(ghost)
	if err := n.backends.sql.Exec("DELETE FROM users WHERE id = ?", ghost.id).Error; err != nil {
		t.Fatal(err)
	}
	if code := ghostSock.closeCode(); code != hub.StatusTokenRevoked {
		t.Fatalf("a deleted user's socket closed with %d, want %d", code, hub.StatusTokenRevoked)
	}
}

var _ = alsoOn(onMemory, TestWebSocketTicketsAreSingleUse)

// TestWebSocketTicketsAreSingleUse: POST /api/ws-ticket answers a ticket
// that opens one WebSocket, on any node, once; it is no token for REST,
// and a socket opened with it closes when the token it stands for is
// logged out.
func TestWebSocketTicketsAreSingleUse(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	other := n
	if os.Getenv(envEngine) != "memory" {
		second := n.cfg
		second.DataDir, second.NodeID = t.TempDir(), "second"
		other = startTestNode(t, second)
	}
	alice := n.user(t, "Alice")
	var tk struct {
		Ticket     string `json:"ticket"`
		ExpiresInS int    `json:"expires_in_s"`
	}
	alice.must(200, "POST", "/api/ws-ticket", nil, &tk)
	if len(tk.Ticket) < 32 || tk.ExpiresInS <= 0 || tk.ExpiresInS > 60 {
		t.Fatalf("ticket %+v", tk)
	}
	n.anon(t).fails(401, "unauthorized", "GET", "/api/me?ticket="+tk.Ticket, nil)
	n.anon(t).fails(401, "unauthorized", "GET", "/api/me?token="+alice.token, nil)

	dial := func(node *testNode, ticket string) (*wsClient, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, br, _, err := ws.Dial(ctx, node.wsURL()+"?ticket="+ticket)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { conn.Close() })
		w := adopt(t, conn, br, alice.id)
		if f := w.next(); f.Type != "ready" || f.User != alice.id {
			t.Fatalf("first frame %+v, want ready for Alice", f)
		}
		return w, nil
	}
	w, err := dial(other, tk.Ticket)
	if err != nil {
		t.Fatalf("upgrade with a fresh ticket: %v", err)
	}
	var refused ws.StatusError
	if _, err := dial(n, tk.Ticket); !errors.As(err, &refused) || int(refused) != 401 {
		t.Fatalf("a used ticket: %v, want 401", err)
	}
	if _, err := dial(n, "0123456789abcdef0123456789abcdef0123456789abcdef"); !errors.As(err, &refused) || int(refused) != 401 {
		t.Fatalf("a made-up ticket: %v, want 401", err)
	}
	alice.must(204, "POST", "/api/auth/logout", nil, nil)
	if code := w.closeCode(); code != hub.StatusTokenRevoked {
		t.Fatalf("ticket socket after its token's logout closed with %d, want %d", code, hub.StatusTokenRevoked)
	}
	n.anon(t).fails(401, "unauthorized", "POST", "/api/ws-ticket", nil)
}
