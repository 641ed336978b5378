package rooms_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"moim/internal/testkit"
	"moim/limit"
	"moim/rooms"
	"moim/teststack"
)

// TestRoomPasswordGuessingIsLimited: 120 wrong joins went through in 0.64 s
// and the right one then worked. Now wrong passwords are limited per user
// and per address, even in parallel, and short passwords are refused.
func TestRoomPasswordGuessingIsLimited(t *testing.T) {
	s := serve(t, rooms.JoinLimits{PerUser: limit.Rule{N: 5, Window: time.Minute}, PerAddress: limit.Rule{N: 8, Window: time.Minute}})
	owner, guesser, friend, neighbour := s.User(t, "Owner"), s.User(t, "Guesser"), s.User(t, "Friend"), s.User(t, "Neighbour")

	owner.Fails(400, "validation", "POST", "/api/rooms", map[string]any{"name": "Short", "password": "1234567"})
	room := s.CreateRoom(owner, map[string]any{"name": "Locked", "password": "correct horse"})
	owner.Fails(400, "validation", "PATCH", fmt.Sprintf("/api/rooms/%d", room.ID), map[string]any{"password": "short"})
	jp := fmt.Sprintf("/api/rooms/%d/join", room.ID)

	got := guesser.Parallel(20, "POST", jp, map[string]any{"password": "wrong password"})
	if got[403] != 5 || got[429] != 15 {
		t.Fatalf("20 parallel wrong joins against a limit of 5: %v, want 5 × 403 and 15 × 429", got)
	}
	if secs := guesser.RetryAfter("POST", jp, `{"password":"correct horse"}`); secs > 60 {
		t.Fatalf("Retry-After %d s for a 1 min window", secs)
	}
	// Others with the right password are not held up by the guesser.
	friend.From("127.0.0.5").Must(200, "POST", jp, map[string]any{"password": "correct horse"}, nil)

	// Per address: the guesser's address has 3 failures left for anyone.
	for range 3 {
		neighbour.Fails(403, "wrong_password", "POST", jp, map[string]any{"password": "neighbour guess"})
	}
	neighbour.Fails(429, "rate_limited", "POST", jp, map[string]any{"password": "neighbour guess"})
}

// TestInviteLinkGuessingIsLimited: codes are not guessed online; refused
// link joins count like wrong room passwords, even in parallel.
func TestInviteLinkGuessingIsLimited(t *testing.T) {
	teststack.OnEach(t, func(t *testing.T, b teststack.Backend) {
		s := serveOn(t, b, rooms.JoinLimits{PerUser: limit.Rule{N: 5, Window: time.Minute}})
		owner, guesser := s.User(t, "Owner"), s.User(t, "Guesser")
		room := s.CreateRoom(owner, map[string]any{"name": "Club"})
		l := owner.InviteLink(room.ID, nil)
		got := guesser.Parallel(20, "POST", testkit.JoinPath("guessedcodeguessedcode"), nil)
		if got[404] != 5 || got[429] != 15 {
			t.Fatalf("20 parallel guesses against a limit of 5: %v, want 5 × 404 and 15 × 429", got)
		}
		guesser.Fails(429, "rate_limited", "POST", testkit.JoinPath(l.Code), nil)
	})
}

// TestInviteLinkLastUseGoesToOne: ten users racing for a one-use link;
// exactly one gets in.
func TestInviteLinkLastUseGoesToOne(t *testing.T) {
	teststack.OnEach(t, func(t *testing.T, b teststack.Backend) {
		s := serveOn(t, b, rooms.JoinLimits{})
		owner := s.User(t, "Owner")
		room := s.CreateRoom(owner, map[string]any{"name": "Club"})
		l := owner.InviteLink(room.ID, map[string]any{"max_uses": 1})
		users := make([]*testkit.Client, 10)
		for i := range users {
			users[i] = s.User(t, "Racer")
		}
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Go(func() {
				status, _ := u.Raw("POST", testkit.JoinPath(l.Code), nil)
				mu.Lock()
				codes[status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		var v roomView
		owner.Must(200, "GET", fmt.Sprintf("/api/rooms/%d", room.ID), nil, &v)
		if codes[200] != 1 || codes[410] != 9 || v.MemberCount != 2 {
			t.Fatalf("one-use link raced by 10: %v, %d members; want one 200, nine 410, 2 members", codes, v.MemberCount)
		}
	})
}
