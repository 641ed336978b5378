// Package teststack serves the domain packages' REST routes (accounts and
// rooms, and what a test adds: fees, attachments) over real services and
// without the real-time side, for those packages' own tests. Tests that
// need a whole node (WebSocket, hub, several nodes) stay in server/.
package teststack

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"

	"moim/accounts"
	"moim/api"
	"moim/chatlog"
	"moim/internal/apiclient"
	"moim/internal/testkit"
	"moim/limit"
	"moim/rooms"
	"moim/sqldb"
)

// Backend is where a Stack keeps its data.
type Backend string

const (
	// OnMariaDB: tables in MariaDB (MOIM_TEST_MYSQL_DSN), the membership
	// mirror and the limits in Redis (MOIM_TEST_REDIS_URL), as nodes
	// sharing Redis keep them.
	OnMariaDB Backend = "MariaDB and Redis"
	// OnSQLite: tables in SQLite, mirror and limits in memory, as the
	// single node keeps them.
	OnSQLite Backend = "SQLite and memory"
)

// OnEach runs test on each backend, as a subtest named after it.
func OnEach(t *testing.T, test func(t *testing.T, b Backend)) {
	for _, b := range []Backend{OnMariaDB, OnSQLite} {
		t.Run(string(b), func(t *testing.T) { test(t, b) })
	}
}

// Stack is the account and room services on one backend (a fresh
// database and Redis key prefix), ready for more services and served by
// Serve.
type Stack struct {
	// Base is the served routes' base URL, once Serve ran.
	Base     string
	DB       *gorm.DB
	Accounts *accounts.Accounts
	Rooms    *rooms.Rooms
	// Limiter counts the limits (Redis on MariaDB, memory on SQLite).
	Limiter limit.Limiter
	// Registry collects the services' metrics, served at /metrics.
	Registry *prometheus.Registry
	// IsMember reads the real-time side's copy of membership.
	IsMember func(ctx context.Context, roomID, userID int64) (bool, error)
	tokens   *accounts.Tokens
	// users are the clients User signed up, by id; tests sign up from
	// several goroutines at once.
	users sync.Map
}

// New builds and migrates the account and room services on b; the
// database and keys go when the test ends.
func New(t *testing.T, b Backend) *Stack {
	t.Helper()
	s := &Stack{Registry: prometheus.NewRegistry()}
	var mirror rooms.Mirror
	var err error
	if b == OnSQLite {
		if s.DB, err = sqldb.OpenSQLite(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		m := rooms.NewMemoryMirror()
		mirror, s.Limiter = m, limit.NewMemory()
		s.IsMember = func(_ context.Context, roomID, userID int64) (bool, error) { return m.Has(roomID, userID), nil }
	} else {
		dsn := testkit.CreateDatabase(t, testkit.ServiceURL(t, testkit.EnvMySQL, "MariaDB/MySQL"), " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		if s.DB, err = sqldb.OpenMySQL(dsn); err != nil {
			t.Fatal(err)
		}
		rdb, prefix := testkit.Redis(t)
		m := rooms.NewRedisMirror(rdb, chatlog.Keys{Prefix: prefix, Shards: 4})
		mirror, s.Limiter, s.IsMember = m, limit.NewRedis(rdb, prefix), m.IsMember
	}
	t.Cleanup(func() {
		if sql, err := s.DB.DB(); err == nil {
			_ = sql.Close()
		}
	})
	s.tokens = accounts.NewTokens([]byte("test-secret-test-secret-test-secret-0123456789"), 24*time.Hour)
	if s.Accounts, err = accounts.New(s.DB, s.Limiter, accounts.Limits{}, s.tokens, 4); err != nil {
		t.Fatal(err)
	}
	s.Rooms = rooms.New(s.DB, mirror, s.Accounts, 4)
	for _, migrate := range []func() error{s.Accounts.Migrate, s.Rooms.Migrate} {
		if err := migrate(); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Mount adds a service's routes under /api; auth requires a user's token.
type Mount func(r fiber.Router, auth fiber.Handler)

// Serve serves the account, room and invitation routes, then each of
// mounts, and /metrics, until the test ends.
func (s *Stack) Serve(t *testing.T, mounts ...Mount) {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: api.ErrorHandler(slog.New(slog.DiscardHandler))})
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))
	r, auth := app.Group("/api"), s.tokens.Require()
	s.Accounts.Routes(r, auth)
	s.Rooms.Routes(r, auth)
	s.Rooms.InvitationRoutes(r, auth)
	for _, m := range mounts {
		m(r, auth)
	}
	s.Base = testkit.Serve(t, app)
}

// User signs up a fresh user and logs them in.
func (s *Stack) User(t testing.TB, name string) *testkit.Client {
	t.Helper()
	c := testkit.Signup(t, s.Base, name)
	s.users.Store(c.ID, c)
	return c
}

// CreateRoom has c create a room with every member_ids user in it: they
// first add c as a contact, since others would only be invited.
func (s *Stack) CreateRoom(c *testkit.Client, body map[string]any) apiclient.Room {
	c.T.Helper()
	ids, _ := body["member_ids"].([]int64)
	for _, id := range ids {
		if m, ok := s.users.Load(id); ok && id != c.ID {
			if status, raw := m.(*testkit.Client).Raw("POST", "/api/contacts", map[string]any{"username": c.Username}); status != 200 && status != 201 {
				c.T.Fatalf("user %d adds %d as a contact: %d %s", id, c.ID, status, raw)
			}
		}
	}
	var v apiclient.Room
	c.Must(201, "POST", "/api/rooms", body, &v)
	return v
}

// Mirrored asserts the real-time side's copy of membership agrees with
// want.
func (s *Stack) Mirrored(t *testing.T, roomID int64, want map[int64]bool) {
	t.Helper()
	for uid, in := range want {
		got, err := s.IsMember(context.Background(), roomID, uid)
		if err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("membership mirror: user %d in room %d = %v, want %v", uid, roomID, got, in)
		}
	}
}

// People answers the services that ask who is who (fees.Rooms,
// attachments.Rooms) from the stack's accounts and rooms, as the node's
// directory does.
func (s *Stack) People() People { return People{s.Accounts, s.Rooms} }

// People is Stack.People.
type People struct {
	acc *accounts.Accounts
	rms *rooms.Rooms
}

// Role is the user's role in the room.
func (p People) Role(ctx context.Context, roomID, userID int64) (string, error) {
	role, _, err := p.rms.Role(ctx, roomID, userID)
	return role, err
}

// DisplayName is a user's display name.
func (p People) DisplayName(ctx context.Context, userID int64) (string, error) {
	u, err := p.acc.Get(ctx, userID)
	if err != nil {
		return "", err
	}
	return u.DisplayName, nil
}

// DisplayNames maps each of ids that exists to its display name.
func (p People) DisplayNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	return p.acc.DisplayNames(ctx, ids)
}

// Roster lists a room's members.
func (p People) Roster(ctx context.Context, roomID int64) ([]int64, error) {
	ms, err := p.rms.Roster(ctx, roomID)
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids, err
}

// DirectRoom is the 1:1 room of two users, opened on first use.
func (p People) DirectRoom(ctx context.Context, userID, peerID int64) (int64, error) {
	v, _, err := p.rms.Direct(ctx, userID, peerID)
	if err != nil {
		return 0, err
	}
	return v.ID, nil
}
