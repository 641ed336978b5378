package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestHealthcheckFlag is the image's HEALTHCHECK: `moim -healthcheck`
// with the node's own settings exits 0 while the node answers /healthz
// and 1 once it is gone.
func TestHealthcheckFlag(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	_, port, err := net.SplitHostPort(strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	// ":port" is how a container sets it: every interface, probed over loopback.
	settings := env(map[string]string{"MOIM_ADDR": ":" + port})
	var stderr bytes.Buffer
	if code := run([]string{"-healthcheck"}, settings, &stderr); code != 0 {
		t.Fatalf("healthcheck of a running node exited %d: %s", code, stderr.String())
	}
	n.stop()
	stderr.Reset()
	if code := run([]string{"-healthcheck"}, settings, &stderr); code != 1 || !strings.Contains(stderr.String(), "/healthz") {
		t.Fatalf("healthcheck of a stopped node exited %d with %q; want 1 naming /healthz", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"-healthcheck", "-bcrypt-cost", "99"}, settings, &stderr); code != 1 {
		t.Fatalf("healthcheck with a bad setting exited %d; Docker reserves 2, so it must be 1", code)
	}
}

func TestProbeURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080/healthz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/healthz",
		"[::]:8080":      "http://127.0.0.1:8080/healthz",
		"10.0.0.5:8080":  "http://10.0.0.5:8080/healthz",
		"localhost:8081": "http://localhost:8081/healthz",
	} {
		if got := probeURL(addr); got != want {
			t.Errorf("probeURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
