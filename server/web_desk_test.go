//go:build unix

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"testing"
)

// shellBudget is what a first visit may download, compressed: the page
// and every file it loads before the user sees the app (docs/BENCHMARKS.md).
const shellBudget = 150 << 10

// TestWebShellIsCompressed checks that the page and its assets go out
// gzipped to a browser that accepts it (and plain to one that does not,
// with its own ETag), and that the whole shell — the page plus every
// module app.js imports, transitively, and the stylesheet — stays under
// shellBudget compressed.
func TestWebShellIsCompressed(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	// A transport that does not add and strip Accept-Encoding itself.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path, encoding string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", n.url+path, nil)
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return resp, b
	}
	imports := regexp.MustCompile(`(?:from|import) "\./([\w-]+\.js)"|href="/assets/([\w-]+\.(?:css|js))"|src="/assets/([\w-]+\.js)"`)
	seen := map[string]bool{}
	queue := []string{"/"}
	total := 0
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		zipped, gz := get(path, "gzip, deflate, br")
		if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("GET %s accepting gzip: %v", path, zipped.Header)
		}
		plainResp, plain := get(path, "")
		if plainResp.Header.Get("Content-Encoding") != "" || plainResp.Header.Get("ETag") == zipped.Header.Get("ETag") {
			t.Fatalf("GET %s without gzip: %v (gzipped ETag %s)", path, plainResp.Header, zipped.Header.Get("ETag"))
		}
		r, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("GET %s: not gzip: %v", path, err)
		}
		unzipped, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(unzipped, plain) {
			t.Fatalf("GET %s: the gzipped body is not the file (%v)", path, err)
		}
		if _, refused := get(path, "gzip;q=0"); bytes.Equal(refused, gz) {
			t.Fatalf("GET %s: gzip sent though refused with q=0", path)
		}
		total += len(gz)
		for _, m := range imports.FindAllSubmatch(plain, -1) {
			for _, name := range m[1:] {
				if len(name) > 0 {
					queue = append(queue, "/assets/"+string(name))
				}
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("found only %d files of the shell: %v", len(seen), seen)
	}
	t.Logf("the app shell: %d files, %d bytes gzipped", len(seen), total)
	if total > shellBudget {
		t.Fatalf("the app shell is %d bytes gzipped, over the %d budget", total, shellBudget)
	}
}

// TestWebDeskInChromium runs web/e2e/desk.mjs: a treasurer (desktop), a
// member (phone) and a newcomer use the treasurer's desk, auto-pay, room
// administration and message search, with axe-core on every screen.
func TestWebDeskInChromium(t *testing.T) {
	runBrowserFlow(t, "desk.mjs", testConfig(t),
		"chat-fee-card-desktop.png", "desk-desktop.png", "autopay-phone.png", "admin-desktop.png", "admin-handover-phone.png", "search-phone.png")
}
