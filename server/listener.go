package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"moim/api"
)

// steadyListener is the node's listener as fiber sees it. fasthttp treats
// every accept error but a timeout as the end of the server, so one
// "too many open files" stopped the node and dropped every connection.
// This listener retries temporary errors instead, backing off from 5 ms
// to 1 s as net/http does, and counts them.
type steadyListener struct {
	net.Listener
	errors prometheus.Counter
	log    *slog.Logger
}

func (l *steadyListener) Accept() (net.Conn, error) {
	var wait *backoff.ExponentialBackOff
	for {
		c, err := l.Listener.Accept()
		if err == nil || !temporaryAccept(err) {
			return c, err
		}
		l.errors.Inc()
		if wait == nil {
			wait = &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
		}
		delay := wait.NextBackOff()
		l.log.Warn("accept failed; retrying", "err", err, "in", delay)
		time.Sleep(delay)
	}
}

// temporaryAccept reports whether an accept error passes with time: out
// of descriptors or memory, or a client that left before it was accepted.
func temporaryAccept(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func newAcceptErrors(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moim_accept_errors_total",
		Help: "Temporary errors accepting connections (such as too many open files), each retried after a pause.",
	})
	reg.MustRegister(c)
	return c
}

// defaultMaxConns leaves room below the open-file limit (which Go raises
// to the hard limit at start) for Redis, SQL and store pools, log and
// data files, and HTTP requests: a tenth of the limit, at least 256.
func defaultMaxConns() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 10000
	}
	limit := int(min(r.Cur, 1<<22))
	return max(limit-max(256, limit/10), 16)
}

// maxConns is MOIM_MAX_CONNS, or derived from the open-file limit.
func (n *node) maxConns() int {
	if n.cfg.MaxConns > 0 {
		return n.cfg.MaxConns
	}
	return defaultMaxConns()
}

// errFull is /readyz's word for a node at its connection cap.
type errFull struct{ open, max int }

func (e errFull) Error() string { return fmt.Sprintf("full: %d of %d connections", e.open, e.max) }

// capacity is nil while the node takes new WebSocket connections.
func (n *node) capacity() error {
	if open, limit := n.hub.Connections(), n.maxConns(); open >= limit {
		return errFull{open, limit}
	}
	return nil
}

// upgradeSlots is how many upgrades the hub works on at once: one per
// core on the zero-setup node, whose upgrades wait on nothing but its
// CPU (its SQL is SQLite in process), else the hub's default (more per
// core, as upgrades wait on Redis and MariaDB).
func (n *node) upgradeSlots() int {
	if n.cfg.Embedded() {
		return runtime.GOMAXPROCS(0)
	}
	return 0
}

// connCap refuses WebSocket upgrades at the cap with 503 and Retry-After,
// before the handshake: a full node keeps descriptors for what it already
// serves, and clients retry (the load balancer, seeing /readyz fail,
// sends them to another node).
func (n *node) connCap() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := n.capacity(); err != nil {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(5))
			return api.Errorf(fiber.StatusServiceUnavailable, "unavailable", "this node is "+err.Error()+"; try again shortly")
		}
		return c.Next()
	}
}
