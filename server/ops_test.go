package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"
	"moim/limit"
)

func TestOperationsEndpoints(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.anon(t)
	var health struct{ Status string }
	c.must(200, "GET", "/healthz", nil, &health)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	c.must(200, "GET", "/readyz", nil, &ready)
	if health.Status != "ok" || ready.Status != "ready" || ready.Checks["redis"] != "ok" || ready.Checks["messages"] != "ok" || ready.Checks["hub"] != "ok" || ready.Checks["sql"] != "ok" {
		t.Fatalf("healthz %+v, readyz %+v", health, ready)
	}

	n.user(t, "Metered")
	c.fails(404, "not_found", "GET", "/no/such/route", nil)
	status, raw := c.raw("GET", "/metrics", nil)
	metrics := string(raw)
	for _, want := range []string{
		`moim_http_requests_total{method="POST",route="/api/auth/signup",status="201"} 1`,
		`moim_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`moim_http_request_duration_seconds_bucket{method="POST",route="/api/auth/login"`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if status != 200 || !strings.Contains(metrics, want) {
			t.Fatalf("/metrics (status %d) lacks %q:\n%s", status, want, grepLines(metrics, "moim_http_requests_total"))
		}
	}

	status, raw = c.raw("GET", "/swagger-ui/index.html", nil)
	if status != 200 || !strings.Contains(string(raw), "swagger-ui-bundle.js") {
		t.Fatalf("swagger ui index: %d %.200s", status, raw)
	}
	for _, asset := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"} {
		if status, raw := c.raw("GET", "/swagger-ui/"+asset, nil); status != 200 || len(raw) == 0 {
			t.Fatalf("swagger asset %s: %d", asset, status)
		}
	}
	c.fails(404, "not_found", "GET", "/swagger-ui/../openapi.json.go", nil)
}

func TestTooLargeAndUnknownRoutes(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.user(t, "Big")
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `"}`
	// Over a raw socket, headers only: the node answers 413 from the
	// declared length and closes. Sending the body too would race that
	// close (a reset can swallow the answer), as an HTTP client does.
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(conn, "POST /api/rooms HTTP/1.1\r\nHost: moim\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.token, len(big))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized body: %v", err)
	}
	var e apiError
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 413 || e.Error.Code != "too_large" {
		t.Fatalf("oversized body: %d %+v %v", resp.StatusCode, e, err)
	}
	resp.Body.Close()
	c.fails(404, "not_found", "GET", "/api/nothing-here", nil)
	c.fails(405, "method_not_allowed", "PUT", "/api/auth/login", map[string]any{})
	// The node still serves after the oversized body.
	c.must(200, "GET", "/api/me", nil, nil)
}

// TestOpenAPIDescribesEveryRoute fails when a route is added without
// documenting it, or the document names a route that does not exist.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	n.anon(t).must(200, "GET", "/openapi.json", nil, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" {
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]bool{}
	for _, r := range n.app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "USE" || r.Path == "/swagger-ui/*" {
			continue
		}
		p := r.Path
		if p != "/" { // the web client's page; other paths drop a trailing slash
			p = strings.TrimSuffix(p, "/")
		}
		p = param.ReplaceAllString(p, "{$1}")
		served[r.Method+" "+p] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] && k != "GET /swagger-ui/index.html" {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("openapi.json is out of step with the routes:\n  not documented: %v\n  documented but not served: %v", missing, extra)
	}
}

// TestReadyzNamesTheBackendThatIsDown runs a node on its own redis-server
// process, kills it, and expects /readyz to say Redis is the problem.
func TestReadyzNamesTheBackendThatIsDown(t *testing.T) {
	port := freePort(t)
	stopRedis := startRedis(t, port, t.TempDir())
	cfg := testConfig(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	cfg.LoginLimit = limit.Rule{N: 10, Window: 10 * time.Minute} // the default: logins then need Redis
	n := startTestNode(t, cfg)
	n.anon(t).must(200, "GET", "/readyz", nil, nil)

	stopRedis()
	var body struct {
		Error  struct{ Code, Message string }
		Checks map[string]string
	}
	n.anon(t).must(503, "GET", "/readyz", nil, &body)
	if body.Error.Code != "unavailable" || !strings.Contains(body.Error.Message, "redis") || body.Checks["redis"] == "ok" || body.Checks["sql"] != "ok" {
		t.Fatalf("readyz with Redis down: %+v", body)
	}
	// A request that needs Redis gets a 503, not a 500.
	n.anon(t).fails(503, "unavailable", "POST", "/api/auth/login", map[string]any{"username": "someone", "password": "password1"})
}

// startRedis runs a private redis-server on port with its files in dir
// (append-only on, so a restart keeps the data) until stop is called.
func startRedis(t *testing.T, port int, dir string) (stop func()) {
	t.Helper()
	return testkit.StartRedis(t, port, dir)
}

func freePort(t *testing.T) int { return testkit.FreePort(t) }

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	testkit.WaitTCP(t, addr)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestProfilesOnlyOnTheirOwnListener checks MOIM_PPROF_ADDR's listener
// serves Go's profiles and the public port does not.
func TestProfilesOnlyOnTheirOwnListener(t *testing.T) {
	addr, stop, err := serveProfiles("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("pprof listener answered %d: %.200s", resp.StatusCode, body)
	}
	n := startTestNode(t, testConfig(t))
	if status, _ := n.anon(t).raw("GET", "/debug/pprof/goroutine?debug=1", nil); status != 404 {
		t.Fatalf("the public port answered /debug/pprof with %d, want 404", status)
	}
}
