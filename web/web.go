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
	"fmt"
	"io/fs"
	"path"
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
}

// csp allows only the node itself: scripts, styles and the WebSocket come
// from the same origin, and nothing may frame the app.
const csp = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

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
	index  file
	assets map[string]file
}

// Load reads the embedded client. It fails only if the binary was built
// without its files.
func Load() (*Files, error) {
	f := &Files{assets: map[string]file{}}
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
		sum := sha256.Sum256(data)
		gz, err := gzipped(data)
		if err != nil {
			return nil, fmt.Errorf("web: compress %s: %w", e.Name(), err)
		}
		fl := file{data: data, gz: gz, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if e.Name() == "index.html" {
			f.index = fl
		} else {
			f.assets[e.Name()] = fl
		}
	}
	if f.index.data == nil {
		return nil, fmt.Errorf("web: index.html is missing")
	}
	return f, nil
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

// Routes serves the app at GET / and its files at GET /assets/:file. The
// client routes with the URL fragment (#/room/7), so no other path needs
// the page and unknown paths stay 404.
func (f *Files) Routes(app fiber.Router) {
	app.Get("/", func(c *fiber.Ctx) error { return serve(c, f.index) })
	app.Get("/assets/:file", func(c *fiber.Ctx) error {
		fl, ok := f.assets[c.Params("file")]
		if !ok {
			return fiber.ErrNotFound
		}
		return serve(c, fl)
	})
}

// serve answers with fl, or 304 when the browser already has it. Files are
// revalidated on every load (no-cache) so a new binary's client is picked
// up at once without hashed file names.
func serve(c *fiber.Ctx, fl file) error {
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
	c.Set(fiber.HeaderContentSecurityPolicy, csp)
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
