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
// base sends (nginx passes the upgrade on), and waits for "ready".
func dialWS(t *testing.T, base string, u *testkit.Client) *testkit.WS {
	t.Helper()
	u.Base = base
	return u.Connect(apiclient.DialOptions{Header: http.Header{"Origin": {base}}})
}
