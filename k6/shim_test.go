package k6

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// shimScript exercises the shim where k6's behaviour decides what the load
// scripts measure. Each scenario records what it saw in the events counter.
const shimScript = `
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';

const events = new Counter('events');
const paced = new Counter('paced');

export const options = {
  scenarios: {
    reset: { executor: 'per-vu-iterations', vus: 1, iterations: 1, exec: 'reset', maxDuration: '10s', gracefulStop: '0s' },
    eof: { executor: 'per-vu-iterations', vus: 1, iterations: 1, exec: 'eof', maxDuration: '10s', gracefulStop: '0s' },
    boom: { executor: 'per-vu-iterations', vus: 1, iterations: 1, exec: 'boom', maxDuration: '10s', gracefulStop: '0s' },
    paced: { executor: 'constant-arrival-rate', rate: 10, timeUnit: '1s', duration: '1s', preAllocatedVUs: 1,
      maxVUs: 2, exec: 'slow', gracefulStop: '5s' },
  },
};

function watch(path) {
  const ws = new WebSocket(__ENV.WS_BASE + path);
  ws.onerror = () => events.add(1, { event: 'error' });
  ws.onclose = (e) => events.add(1, { event: 'close', code: String(e.code) });
}

export function reset() { watch('/reset?token=secret'); }
export function eof() { watch('/eof'); }
export function boom() { throw new Error('boom'); }
export function slow() {
  paced.add(1);
  sleep(0.4);
}
`

// TestK6ShimBehavesLikeK6 runs shimScript against a server that resets one
// WebSocket and ends another without a close frame, and checks the shim
// does what k6 does: a reset fires only close, without a code, an ended
// stream fires error and close 1006 (k6's readPump); the URL tags keep the
// query string; an exception in an iteration leaves the exit code 0;
// constant-arrival-rate drops the iterations that find both VUs busy; the
// reservation adds up scenarios that run at once.
func TestK6ShimBehavesLikeK6(t *testing.T) {
	node := nodeBinary(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		if tcp, ok := conn.(*net.TCPConn); ok && r.URL.Path == "/reset" {
			// Close with RST, once the client has read the upgrade: on
			// loopback node reports a RST that comes with the data as an end.
			time.Sleep(200 * time.Millisecond)
			_ = tcp.SetLinger(0)
		}
		_ = conn.Close()
	}))
	defer srv.Close()

	dir := t.TempDir()
	script := filepath.Join(dir, "shim-check.js")
	if err := os.WriteFile(script, []byte(shimScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "summary.json")
	cmd := exec.Command(node, "shim/run.mjs", script)
	cmd.Env = append(os.Environ(), "K6SHIM_SUMMARY="+out, "WS_BASE=ws"+strings.TrimPrefix(srv.URL, "http"))
	output, err := cmd.CombinedOutput()
	t.Logf("node shim/run.mjs:\n%s", output)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Errorf("exit code %d, want 0: k6 logs an exception in an iteration and goes on", exit.ExitCode())
	} else if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Metrics     map[string]map[string]float64  `json:"metrics"`
		Series      map[string][]map[string]string `json:"series"`
		Exceptions  []struct{ Role, Where, Message string }
		Reservation struct{ Planned, Possible int }
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}

	seen := map[string][]string{}
	for _, tags := range s.Series["events"] {
		seen[tags["scenario"]] = append(seen[tags["scenario"]], tags["event"]+" "+tags["code"])
	}
	if got := strings.Join(seen["reset"], ", "); got != "close undefined" {
		t.Errorf("reset connection: %q, want only a close without a code", got)
	}
	if got := strings.Join(seen["eof"], ", "); got != "error , close 1006" {
		t.Errorf("connection ended without a close frame: %q, want error then close 1006", got)
	}
	for _, tags := range s.Series["ws_sessions"] {
		if tags["scenario"] == "reset" && !strings.HasSuffix(tags["url"], "/reset?token=secret") {
			t.Errorf("reset's ws_sessions tagged url=%q, want the URL dialled, query included", tags["url"])
		}
	}
	if len(s.Exceptions) != 1 || s.Exceptions[0].Role != "iteration" || !strings.Contains(s.Exceptions[0].Message, "boom") {
		t.Errorf("exceptions %+v, want boom's, from an iteration", s.Exceptions)
	}
	// 10 iterations are due in 1 s, on at most 2 VUs busy 0.4 s each: some
	// are dropped, none is made up for later.
	started, dropped := s.Metrics["paced"]["count"], s.Metrics["dropped_iterations"]["count"]
	if dropped == 0 || started+dropped != 10 {
		t.Errorf("%v iterations started and %v dropped, want 10 with some dropped", started, dropped)
	}
	if r := s.Reservation; r.Planned != 4 || r.Possible != 5 {
		t.Errorf("reservation %d (up to %d), want 4 (one per scenario, all at once) up to 5", r.Planned, r.Possible)
	}
}
