package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"moim/internal/apiclient"
	"moim/internal/testkit"
)

var _ = alsoOn(onMemory, TestConnectionStormMissesNothing)

// lastBody is the body of a storm room's last message.
const lastBody = "after everyone synced"

// TestConnectionStormMissesNothing is issue 18's connection storm at test
// size: 200 connections of 20 fresh rooms arrive at once while every room
// gets a message every few milliseconds. What the protocol promises each
// of them: after "ready", a sync returns everything published before the
// join, live delivery brings everything after it (the server reads a
// connection's frames only once its rooms are joined, so nothing falls
// between the two), and a message published once the sync is answered
// arrives live. So each connection ends with every seq of its room, and
// the room's last message, posted after all its members synced, reached
// all of them without another sync. (How fast they get there is a
// benchmark: docs/BENCHMARKS.md, "Connection storms".)
func TestConnectionStormMissesNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.InviteRule = "anyone"
	n := startTestNode(t, cfg)
	const rooms, size = 20, 10
	users := make([]*client, rooms*size)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(users); i = int(next.Add(1)) - 1 {
				users[i] = n.user(t, fmt.Sprintf("Storm %d", i))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	roomIDs := make([]int64, rooms)
	for r := range rooms {
		members := users[r*size : (r+1)*size]
		ids := make([]int64, 0, size-1)
		for _, m := range members[1:] {
			ids = append(ids, m.id)
		}
		var v roomView
		members[0].must(201, "POST", "/api/rooms", map[string]any{"name": "Storm " + strconv.Itoa(r), "member_ids": ids}, &v)
		roomIDs[r] = v.ID
	}

	// Every room gets messages over REST from before the storm until all
	// its members have synced, then one last message.
	synced := make([]sync.WaitGroup, rooms)
	for r := range synced {
		synced[r].Add(size)
	}
	last := make([]atomic.Int64, rooms)
	var posters sync.WaitGroup
	for r := range rooms {
		allSynced := make(chan struct{})
		go func() {
			synced[r].Wait()
			close(allSynced)
		}()
		posters.Go(func() {
			creator := users[r*size]
			path := urlf("/api/rooms/%d/messages", roomIDs[r])
			for k := 0; ; k++ {
				var ack struct{ Seq int64 }
				select {
				case <-allSynced:
					creator.must(201, "POST", path, map[string]any{"cid": "last", "body": lastBody}, &ack)
					last[r].Store(ack.Seq)
					return
				default:
				}
				creator.must(201, "POST", path, map[string]any{"cid": "m" + strconv.Itoa(k), "body": "during the storm"}, &ack)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	// All connections at once: ready, a sync from 0, then read until the
	// room's last message.
	got := make([]map[int64]bool, len(users))
	var conns sync.WaitGroup
	for i, u := range users {
		conns.Go(func() {
			r := i / size
			room := roomIDs[r]
			seen := map[int64]bool{}
			got[i] = seen
			syncing := true
			defer func() {
				if syncing {
					synced[r].Done() // failed: the room's last message still goes out
				}
			}()
			w, err := stormDial(u)
			if err != nil {
				t.Errorf("user %d: %v", i, err)
				return
			}
			defer w.Conn.Close()
			sync := func(from int64) error {
				return w.Conn.Send(map[string]any{"type": "sync", "rooms": map[string]int64{strconv.FormatInt(room, 10): from}})
			}
			if err := sync(0); err != nil {
				t.Errorf("user %d: %v", i, err)
				return
			}
			// have is the last seq up to which nothing is missing.
			var have int64
			for {
				f, err := w.Read(60 * time.Second)
				if err != nil {
					t.Errorf("user %d: %v", i, err)
					return
				}
				switch {
				case f.Type == "msg" && f.Room == room:
					seen[f.Seq] = true
					for seen[have+1] {
						have++
					}
					if f.Body == lastBody && !syncing {
						return
					}
				case f.Type == "synced" && f.Room == room && syncing:
					if have < f.Seq { // a sync answers 500 at most
						if err := sync(have); err != nil {
							t.Errorf("user %d: %v", i, err)
							return
						}
						continue
					}
					syncing = false
					synced[r].Done()
				}
			}
		})
	}
	conns.Wait()
	posters.Wait()
	for i := range users {
		r := i / size
		for seq := int64(1); seq <= last[r].Load(); seq++ {
			if !got[i][seq] {
				t.Errorf("user %d of room %d never got seq %d of %d (live or by sync)", i, roomIDs[r], seq, last[r].Load())
				break
			}
		}
	}
}

// stormDial connects as u and waits for ready, trying again after a
// refusal (a node past its backends' capacity answers 503 before the
// upgrade, and clients reconnect), as any client in a storm does.
func stormDial(u *client) (*testkit.WS, error) {
	var err error
	for attempt := range 5 {
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		k := u.kit()
		var conn *apiclient.Conn
		conn, err = k.Dial(ctx, apiclient.DialOptions{})
		cancel()
		if err != nil {
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f apiclient.Frame
		if f, err = conn.AwaitReady(); err != nil || f.User != u.id {
			conn.Close()
			err = fmt.Errorf("%+v %v, want ready", f, err)
			continue
		}
		return &testkit.WS{T: u.t, Conn: conn, User: u.id}, nil
	}
	return nil, err
}
