//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWebServesTheInstallableApp checks what installing the app relies
// on: the manifest with its icons as real PNGs of the sizes it names, and
// the service worker at the root, filled in with the shell it caches and
// a cache version.
func TestWebServesTheInstallableApp(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	get := func(path, ctype string) []byte {
		t.Helper()
		resp, err := http.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || resp.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		return b
	}
	var m struct {
		Name      string `json:"name"`
		ShortName string `json:"short_name"`
		StartURL  string `json:"start_url"`
		Display   string `json:"display"`
		Icons     []struct{ Src, Sizes, Type string }
	}
	if err := json.Unmarshal(get("/manifest.webmanifest", "application/manifest+json"), &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.ShortName == "" || m.StartURL != "/" || m.Display != "standalone" {
		t.Fatalf("manifest %+v", m)
	}
	sizes := map[string]bool{}
	for _, i := range m.Icons {
		if i.Type != "image/png" {
			continue
		}
		img, err := png.DecodeConfig(bytes.NewReader(get(i.Src, "image/png")))
		if err != nil {
			t.Fatalf("icon %s: %v", i.Src, err)
		}
		if got := fmt.Sprintf("%dx%d", img.Width, img.Height); got != i.Sizes {
			t.Fatalf("icon %s is %s, the manifest says %s", i.Src, got, i.Sizes)
		}
		sizes[i.Sizes] = true
	}
	if !sizes["192x192"] || !sizes["512x512"] {
		t.Fatalf("manifest PNG icons %v, want 192x192 and 512x512", sizes)
	}
	sw := string(get("/sw.js", "text/javascript; charset=utf-8"))
	if strings.Contains(sw, "__SHELL_") || !regexp.MustCompile(`const VERSION = "[0-9a-f]{16}";`).MatchString(sw) ||
		!strings.Contains(sw, `"/assets/app.js"`) || !strings.Contains(sw, `const FILES = ["/",`) {
		t.Fatalf("sw.js is not filled in with the shell:\n%.400s", sw)
	}
	n.anon(t).fails(404, "not_found", "GET", "/assets/sw.js", nil)
}

// TestWebPushInChromium runs web/e2e/push.mjs: the service worker and
// manifest, the mute toggle, push opt-in, a push to Alice while she is
// away (encrypted by the node, decrypted by the flow's receiver) shown by
// the service worker, and an offline reload that shows "reconnecting".
func TestWebPushInChromium(t *testing.T) {
	cfg := testConfig(t)
	cfg.PushLoopback = true
	cfg.PushWindow = 200 * time.Millisecond
	runBrowserFlow(t, "push.mjs", cfg, "mute-desktop.png", "mute-phone.png", "offline-desktop.png")
}
