package deploy

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestLiveClientAddressLimits runs a node behind deploy/nginx/nginx.conf and
// moim.conf and checks the per-address limits as users meet them: each
// client is counted on its own address (nginx names it in X-Forwarded-For,
// which the node believes because MOIM_TRUSTED_PROXIES names nginx), a
// forged header changes nothing, and the public gets no /metrics. Clients
// connect from addresses of their own on 127.0.0.0/8, as users on the
// internet do; a proxy that hid them would make one client's sign-ups or
// reconnects refuse everyone's.
func TestLiveClientAddressLimits(t *testing.T) {
	nginxBin := needTool(t, "nginx", "nginx")
	work := t.TempDir()
	env := nodeSettings(t, work)
	// nginx connects to the node from 127.0.0.1.
	env["MOIM_TRUSTED_PROXIES"] = "127.0.0.1"
	env["MOIM_SIGNUP_LIMIT"] = "2/1h"
	env["MOIM_UPGRADE_LIMIT"] = "2/1m"
	node := startNode(t, buildServer(t, work), work, "moim-1", env)
	lb := startNginx(t, nginxBin, work, []string{node})

	alice, bob := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	signup := func(c *http.Client, forged string) int {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"username": "u_" + randomName(""), "password": "password1", "display_name": "Someone"})
		req, err := http.NewRequest("POST", lb+"/api/auth/signup", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if forged != "" {
			req.Header.Set("X-Forwarded-For", forged)
		}
		return status(t, c, req)
	}
	upgrade := func(c *http.Client) int {
		t.Helper()
		req, err := http.NewRequest("GET", lb+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return status(t, c, req)
	}
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: status %d, want %d", what, got, want)
		}
	}

	expect("alice's first sign-up", signup(alice, ""), 201)
	expect("alice's second sign-up", signup(alice, ""), 201)
	expect("alice's third sign-up (limit 2/1h)", signup(alice, ""), 429)
	expect("alice's sign-up with a forged X-Forwarded-For", signup(alice, "198.51.100.7"), 429)
	expect("bob's sign-up, from his own address", signup(bob, ""), 201)

	// The limit comes before authentication: without a token an upgrade
	// within the limit is refused as unauthenticated, past it as too many.
	expect("alice's first upgrade", upgrade(alice), 401)
	expect("alice's second upgrade", upgrade(alice), 401)
	expect("alice's third upgrade (limit 2/1m)", upgrade(alice), 429)
	expect("bob's upgrade, from his own address", upgrade(bob), 401)

	// Prometheus scrapes the nodes directly; nginx serves none of it.
	direct, err := http.Get("http://" + node + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	direct.Body.Close()
	expect("the node's own /metrics", direct.StatusCode, 200)
	for _, path := range []string{"/metrics", "/metrics/", "/METRICS", "//metrics", "/metrics?format=text"} {
		req, err := http.NewRequest("GET", lb+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		expect("GET "+path+" through nginx", status(t, bob, req), 404)
	}
}

// clientFrom is an HTTP client whose connections come from ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func status(t *testing.T, c *http.Client, req *http.Request) int {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
