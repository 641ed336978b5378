package rooms_test

import (
	"testing"

	"moim/internal/apiclient"
	"moim/rooms"
	"moim/teststack"
)

type (
	roomView = apiclient.Room
	roomList = apiclient.RoomList
)

// serve starts the room and account routes on MariaDB and Redis (a fresh
// database and key prefix), without the real-time side, counting wrong
// room passwords and invite codes by joins.
func serve(t *testing.T, joins rooms.JoinLimits) *teststack.Stack {
	return serveOn(t, teststack.OnMariaDB, joins)
}

// serveOn is serve on backend b.
func serveOn(t *testing.T, b teststack.Backend, joins rooms.JoinLimits) *teststack.Stack {
	t.Helper()
	s := teststack.New(t, b)
	s.Rooms.LimitJoins(s.Limiter, joins)
	s.Serve(t)
	return s
}
