package deploy

import (
	"net/http"
	"testing"

	"moim/internal/apiclient"
	"moim/internal/testkit"
)

// signup signs up a fresh user through base (the load balancer).
func signup(t *testing.T, base, name string) *testkit.Client {
	t.Helper()
	return testkit.Signup(t, base, name)
}

// dialWS opens u's WebSocket through base, with the Origin a browser on
// base sends (nginx passes the upgrade on), and waits until it is live.
func dialWS(t *testing.T, base string, u *testkit.Client) *testkit.WS {
	t.Helper()
	u.Base = base
	w := u.Connect(apiclient.DialOptions{Header: http.Header{"Origin": {base}}})
	// "ready" comes before the socket has joined its rooms; its first
	// frame is read once it has, so the pong says it hears them live
	// (docs/PROTOCOL.md, section 1).
	w.Send(map[string]any{"type": "ping"})
	w.Await("pong")
	return w
}
