// Package web is Moim's browser client: plain HTML, CSS and JavaScript
// modules embedded in the binary, so a node serves a usable app at / with
// no build step and no CDN.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed static
var static embed.FS

// types are the only files served; anything else in static/ stays private.
var types = map[string]string{
	".html": fiber.MIMETextHTMLCharsetUTF8,
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	// The manifest and the service worker are served at the root (below).
	".webmanifest": "application/manifest+json",
}

// rootFiles are served at /name instead of /assets/name: a service
// worker controls only pages under its own path, and the manifest sits
// beside it.
var rootFiles = map[string]bool{"sw.js": true, "manifest.webmanifest": true}

// policy is the page's Content-Security-Policy. It allows only the node
// itself: scripts, styles and the WebSocket come from the same origin, and
// nothing may frame the app. checkout, when set, is the origin of a
// payment provider's checkout script (Toss's SDK), allowed to load, to be
// talked to and to show its payment window in a frame; it is set only
// when that provider is the server's.
func policy(checkout string) string {
	script, connect, frame := "", "'self'", "'none'"
	if checkout != "" {
		script, connect, frame = "script-src 'self' "+checkout+"; ", "'self' "+checkout, checkout
	}
	return "default-src 'self'; " + script + "connect-src " + connect + "; frame-src " + frame + "; img-src 'self' data: blob:; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

type file struct {
	data []byte
	// gz is data gzipped once at load (the files never change while the
	// binary runs), so a browser's first load costs a third of the bytes
	// and no request pays for compressing.
	gz    []byte
	ctype string
	etag  string
}

// Files is the client's file set: index.html plus the assets it loads.
type Files struct {
	csp    string
	index  file
	assets map[string]file
	root   map[string]file
}

// Load reads the embedded client. checkout is the origin of the payment
// provider's checkout script the page may load ("" for none: the sandbox,
// or payments off). It fails only if the binary was built without its
// files.
func Load(checkout string) (*Files, error) {
	f := &Files{csp: policy(checkout), assets: map[string]file{}, root: map[string]file{}}
	root, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	entries, err := fs.ReadDir(root, ".")
	if err != nil {
		return nil, fmt.Errorf("web: list files: %w", err)
	}
	for _, e := range entries {
		ctype, ok := types[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		data, err := fs.ReadFile(root, e.Name())
		if err != nil {
			return nil, fmt.Errorf("web: read %s: %w", e.Name(), err)
		}
		fl, err := newFile(data, ctype)
		if err != nil {
			return nil, fmt.Errorf("web: compress %s: %w", e.Name(), err)
		}
		switch {
		case e.Name() == "index.html":
			f.index = fl
		case rootFiles[e.Name()]:
			f.root[e.Name()] = fl
		default:
			f.assets[e.Name()] = fl
		}
	}
	if f.index.data == nil || f.root["sw.js"].data == nil {
		return nil, fmt.Errorf("web: index.html or sw.js is missing")
	}
	if f.root["sw.js"], err = f.worker(); err != nil {
		return nil, fmt.Errorf("web: compress sw.js: %w", err)
	}
	return f, nil
}

// newFile is a served file: its bytes, gzipped once, and its tag.
func newFile(data []byte, ctype string) (file, error) {
	sum := sha256.Sum256(data)
	gz, err := gzipped(data)
	return file{data: data, gz: gz, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}, err
}

// worker is sw.js with the shell it caches filled in: the page and every
// asset, and a version that changes with any of them, so a new binary's
// client replaces the cached one.
func (f *Files) worker() (file, error) {
	names := make([]string, 0, len(f.assets))
	for n := range f.assets {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	h.Write(f.index.data)
	shell := []string{"/"}
	for _, n := range names {
		h.Write([]byte(n))
		h.Write(f.assets[n].data)
		shell = append(shell, "/assets/"+n)
	}
	list, _ := json.Marshal(shell) // a list of strings always marshals
	sw := f.root["sw.js"]
	data := bytes.Replace(sw.data, []byte("__SHELL_VERSION__"), []byte(hex.EncodeToString(h.Sum(nil)[:8])), 1)
	data = bytes.Replace(data, []byte("__SHELL_FILES__"), list, 1)
	return newFile(data, sw.ctype)
}

func gzipped(data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Routes serves the app at GET /, its service worker and manifest at
// GET /sw.js and /manifest.webmanifest, and its files at GET
// /assets/:file. The client routes with the URL fragment (#/room/7), so no
// other path needs the page and unknown paths stay 404.
func (f *Files) Routes(app fiber.Router) {
	app.Get("/", func(c *fiber.Ctx) error { return f.serve(c, f.index) })
	for name, fl := range f.root {
		app.Get("/"+name, func(c *fiber.Ctx) error { return f.serve(c, fl) })
	}
	app.Get("/assets/:file", func(c *fiber.Ctx) error {
		fl, ok := f.assets[c.Params("file")]
		if !ok {
			return fiber.ErrNotFound
		}
		return f.serve(c, fl)
	})
}

// serve answers with fl, or 304 when the browser already has it. Files are
// revalidated on every load (no-cache) so a new binary's client is picked
// up at once without hashed file names.
func (f *Files) serve(c *fiber.Ctx, fl file) error {
	body, etag := fl.data, fl.etag
	gz := acceptsGzip(c.Get(fiber.HeaderAcceptEncoding))
	if gz {
		// Each encoding is its own representation with its own tag.
		body, etag = fl.gz, strings.TrimSuffix(fl.etag, `"`)+`-gz"`
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentSecurityPolicy, f.csp)
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fl.ctype)
	if gz {
		c.Set(fiber.HeaderContentEncoding, "gzip")
	}
	return c.Send(body)
}

// acceptsGzip reads an Accept-Encoding header: gzip listed and not
// refused with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, weighted := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !weighted {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
