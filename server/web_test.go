//go:build unix

package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"moim/internal/testkit"
)

// TestWebServesTheClient checks what the browser relies on before any
// script runs: the page at /, its assets with the right types, revalidation,
// and that unknown paths are still the API's 404.
func TestWebServesTheClient(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	get := func(path, etag string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", n.url+path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	page := get("/", "")
	var body bytes.Buffer
	_, _ = body.ReadFrom(page.Body)
	if page.StatusCode != 200 || page.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body.String(), `<script type="module" src="/assets/app.js">`) ||
		!strings.Contains(page.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d %v\n%s", page.StatusCode, page.Header, body.String())
	}
	for path, ctype := range map[string]string{
		"/assets/app.js":    "text/javascript; charset=utf-8",
		"/assets/style.css": "text/css; charset=utf-8",
		"/assets/icon.svg":  "image/svg+xml",
	} {
		r := get(path, "")
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != ctype || r.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %v", path, r.StatusCode, r.Header)
		}
		if again := get(path, r.Header.Get("ETag")); again.StatusCode != 304 {
			t.Fatalf("GET %s with its ETag: %d, want 304", path, again.StatusCode)
		}
	}
	c := n.anon(t)
	c.fails(404, "not_found", "GET", "/assets/nothing.js", nil)
	c.fails(404, "not_found", "GET", "/room/1", nil)
}

// TestWebClientInChromium runs web/e2e/flow.mjs: Alice and Bob use the
// web client in Debian's Chromium (driven by Playwright) against a real
// node: sign up, chat, reconnect without losing or doubling anything, and
// pay dues; a room tapped as a new message reorders the list opens.
func TestWebClientInChromium(t *testing.T) {
	runBrowserFlow(t, "flow.mjs", testConfig(t), "chat-desktop.png", "chat-phone.png", "dues-desktop.png", "dues-phone.png")
}

// runBrowserFlow runs one flow of web/e2e (node FILE BASE_URL OUT_DIR, see
// web/e2e/kit.mjs) against a node started with cfg, and checks that it
// wrote the named screenshots. Screenshots go to MOIM_E2E_OUT/<flow> when
// set (kept), else to the test's temporary directory.
func runBrowserFlow(t *testing.T, flow string, cfg Config, screenshots ...string) {
	t.Helper()
	dir, err := filepath.Abs("../web/e2e")
	if err != nil {
		t.Fatal(err)
	}
	missing := func(what string) {
		t.Helper()
		testkit.Missing(t, "%s: the browser test cannot run (.ci/run installs it)", what)
	}
	node := testkit.Tool(t, "the browser test needs it; .ci/run installs it", "node")
	browser := os.Getenv("MOIM_CHROMIUM")
	if browser == "" {
		browser = "/usr/bin/chromium"
	}
	if _, err := os.Stat(browser); err != nil {
		missing(browser + " is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing("web/e2e/node_modules is missing (npm ci in web/e2e)")
	}

	n := startTestNode(t, cfg)
	out := t.TempDir()
	if keep := os.Getenv("MOIM_E2E_OUT"); keep != "" {
		out = filepath.Join(keep, strings.TrimSuffix(flow, ".mjs"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, flow, n.url, out)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MOIM_CHROMIUM="+browser)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	// Node and the Chromium it starts share a process group, ended as one
	// on timeout so no browser outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	t.Logf("node %s %s %s:\n%s", flow, n.url, out, output.String())
	if ctx.Err() != nil {
		t.Fatalf("the browser flow did not finish within 4 minutes")
	}
	if err != nil {
		t.Fatalf("the browser flow failed (%v); screenshots and summary.json in %s", err, out)
	}
	for _, name := range screenshots {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s not written: %v", name, err)
		}
	}
}

// TestWebBusyInChromium runs web/e2e/busy.mjs against a node that refuses
// sends as busy whenever anything lags: the web client sends refused
// messages again after the wait, and them and anything typed meanwhile
// one at a time, oldest first; every message ends up sent once.
func TestWebBusyInChromium(t *testing.T) {
	cfg := testConfig(t)
	cfg.BusyLag = time.Nanosecond
	runBrowserFlow(t, "busy.mjs", cfg, "busy-desktop.png")
}
