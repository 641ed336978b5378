package main

import (
	"os"
	"testing"
	"time"

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
