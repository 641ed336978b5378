package rooms_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
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

// roomsServer is the room and account routes over real services, without
// the real-time side.
type roomsServer struct {
	base string
	db   *gorm.DB
	// isMember reads the real-time side's copy of membership.
	isMember func(ctx context.Context, roomID, userID int64) (bool, error)
	// users are the clients user signed up, by id.
	users map[int64]*testkit.Client
}

// backend is where a roomsServer keeps its data.
type backend string

const (
	// onMariaDB: rooms in MariaDB (MOIM_TEST_MYSQL_DSN), the membership
	// mirror and the limits in Redis (MOIM_TEST_REDIS_URL), as nodes
	// sharing Redis keep them.
	onMariaDB backend = "MariaDB and Redis"
	// onSQLite: rooms in SQLite, mirror and limits in memory, as the
	// single node keeps them.
	onSQLite backend = "SQLite and memory"
)

// onEach runs test on each backend.
func onEach(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{onMariaDB, onSQLite} {
		t.Run(string(b), func(t *testing.T) { test(t, b) })
	}
}

// serve starts the routes on MariaDB and Redis (a fresh database and key
// prefix), counting wrong room passwords and invite codes by joins.
func serve(t *testing.T, joins rooms.JoinLimits) *roomsServer { return serveOn(t, onMariaDB, joins) }

// serveOn is serve on backend b.
func serveOn(t *testing.T, b backend, joins rooms.JoinLimits) *roomsServer {
	t.Helper()
	s := &roomsServer{users: map[int64]*testkit.Client{}}
	var mirror rooms.Mirror
	var lim limit.Limiter
	var err error
	if b == onSQLite {
		if s.db, err = sqldb.OpenSQLite(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		m := rooms.NewMemoryMirror()
		mirror, lim = m, limit.NewMemory()
		s.isMember = func(_ context.Context, roomID, userID int64) (bool, error) { return m.Has(roomID, userID), nil }
	} else {
		dsn := testkit.CreateDatabase(t, testkit.ServiceURL(t, testkit.EnvMySQL, "MariaDB/MySQL"), " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		if s.db, err = sqldb.OpenMySQL(dsn); err != nil {
			t.Fatal(err)
		}
		rdb, prefix := testkit.Redis(t)
		m := rooms.NewRedisMirror(rdb, chatlog.Keys{Prefix: prefix, Shards: 4})
		mirror, lim, s.isMember = m, limit.NewRedis(rdb, prefix), m.IsMember
	}
	t.Cleanup(func() {
		if sql, err := s.db.DB(); err == nil {
			_ = sql.Close()
		}
	})
	tokens := accounts.NewTokens([]byte("test-secret-test-secret-test-secret-0123456789"), 24*time.Hour)
	acc, err := accounts.New(s.db, lim, accounts.Limits{}, tokens, 4)
	if err != nil {
		t.Fatal(err)
	}
	rms := rooms.New(s.db, mirror, acc, 4)
	rms.LimitJoins(lim, joins)
	for _, migrate := range []func() error{acc.Migrate, rms.Migrate} {
		if err := migrate(); err != nil {
			t.Fatal(err)
		}
	}
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.New(slog.DiscardHandler))})
	r, auth := app.Group("/api"), tokens.Require()
	acc.Routes(r, auth)
	rms.Routes(r, auth)
	rms.InvitationRoutes(r, auth)
	s.base = testkit.Serve(t, app)
	return s
}

// user signs up a fresh user and logs them in.
func (s *roomsServer) user(t *testing.T, name string) *testkit.Client {
	t.Helper()
	c := testkit.Signup(t, s.base, name)
	s.users[c.ID] = c
	return c
}

type (
	roomView = apiclient.Room
	roomList = apiclient.RoomList
)

// createRoom has c create a room with every member_ids user in it: they
// first add c as a contact, since others would only be invited.
func (s *roomsServer) createRoom(c *testkit.Client, body map[string]any) roomView {
	c.T.Helper()
	ids, _ := body["member_ids"].([]int64)
	for _, id := range ids {
		if m, ok := s.users[id]; ok && id != c.ID {
			if status, raw := m.Raw("POST", "/api/contacts", map[string]any{"username": c.Username}); status != 200 && status != 201 {
				c.T.Fatalf("user %d adds %d as a contact: %d %s", id, c.ID, status, raw)
			}
		}
	}
	var v roomView
	c.Must(201, "POST", "/api/rooms", body, &v)
	return v
}

// myRoles is c's role in each of their rooms, from their room list.
func myRoles(c *testkit.Client) map[int64]string {
	c.T.Helper()
	var l roomList
	c.Must(200, "GET", "/api/rooms", nil, &l)
	roles := map[int64]string{}
	for _, r := range l.Rooms {
		roles[r.ID] = r.Role
	}
	return roles
}

// mirrored asserts the real-time side's copy of membership agrees with
// want.
func (s *roomsServer) mirrored(t *testing.T, roomID int64, want map[int64]bool) {
	t.Helper()
	for uid, in := range want {
		got, err := s.isMember(context.Background(), roomID, uid)
		if err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("membership mirror: user %d in room %d = %v, want %v", uid, roomID, got, in)
		}
	}
}
