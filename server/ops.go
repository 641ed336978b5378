package main

import (
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"moim/server/swaggerui"
)

//go:embed openapi.json
var openapiJSON []byte

// check is one dependency /readyz probes.
type check struct {
	name string
	ping func(context.Context) error
	// info marks a check whose message is detail, never a failure.
	info bool
}

// checks are the backends, plus the batcher's backlog when this node runs
// one: readiness reports it but does not fail on it, since a backlog is
// the batcher doing its job while the store catches up.
func (n *node) checks() []check {
	cs := n.backends.checks()
	cs = append(cs, check{"hub", func(context.Context) error { return n.hub.Healthy() }, false})
	if n.cfg.hasRole("hub") {
		cs = append(cs, check{"connections", func(context.Context) error { return n.capacity() }, false})
	}
	if n.batcher != nil {
		cs = append(cs, check{"batcher", func(context.Context) error {
			count, age := n.batcher.Backlog()
			return backlogInfo{count, age}
		}, true})
	}
	return cs
}

// backlogInfo is the batcher's state shown in /readyz.
type backlogInfo struct {
	n   int64
	age time.Duration
}

func (b backlogInfo) Error() string {
	return fmt.Sprintf("backlog %d messages, oldest %.1fs", b.n, b.age.Seconds())
}

func (b *backends) checks() []check {
	var cs []check
	if b.redis != nil {
		cs = append(cs, check{"redis", func(ctx context.Context) error { return b.redis.Ping(ctx).Err() }, false})
	}
	return append(cs,
		check{"messages", b.msgs.Ping, false},
		check{"sql", func(ctx context.Context) error {
			db, err := b.sql.DB()
			if err != nil {
				return err
			}
			return db.PingContext(ctx)
		}, false})
}

// opsRoutes are the endpoints operators and load balancers use.
func opsRoutes(app *fiber.App, checks []check, reg *prometheus.Registry) {
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", func(c *fiber.Ctx) error { return readyz(c, checks) })
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	app.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(openapiJSON)
	})
	app.Get("/swagger-ui", func(c *fiber.Ctx) error { return c.Redirect("/swagger-ui/index.html") })
	app.Get("/swagger-ui/*", swaggerAsset)
}

// readyz pings every backend concurrently; 503 names the ones that failed.
func readyz(c *fiber.Ctx, checks []check) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	results := make([]error, len(checks))
	done := make(chan int, len(checks))
	for i, ch := range checks {
		go func() {
			results[i] = ch.ping(ctx)
			done <- i
		}()
	}
	for range checks {
		<-done
	}
	status := fiber.Map{}
	var down []string
	for i, ch := range checks {
		switch {
		case results[i] == nil:
			status[ch.name] = "ok"
		case ch.info:
			status[ch.name] = results[i].Error()
		default:
			status[ch.name] = results[i].Error()
			down = append(down, ch.name)
		}
	}
	if len(down) > 0 {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
			"error":  fiber.Map{"code": "unavailable", "message": strings.Join(down, ", ") + " not ready"},
			"checks": status,
		})
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": status})
}

var assetTypes = map[string]string{
	".html": fiber.MIMETextHTMLCharsetUTF8,
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
}

func swaggerAsset(c *fiber.Ctx) error {
	name := c.Params("*")
	if name == "" {
		name = "index.html"
	}
	data, err := fs.ReadFile(swaggerui.FS, name)
	ctype, known := assetTypes[path.Ext(name)]
	if err != nil || !known {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderContentType, ctype)
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(data)
}
