package hub

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/internal/rawio"
)

// A room's frames reach every member in order, through the ring or one
// write each: the members that read as they come get each at once, and
// one whose socket is full (it reads nothing until the end) gets the rest
// of a frame the socket took part of, and the frames after it, from its
// flusher, whole and in order.
func TestFanoutDeliversEveryFrameInOrderToFastAndFullSockets(t *testing.T) {
	for _, plain := range []bool{false, true} {
		name := "ring"
		if plain {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			const room, members = 7, 5
			h, conns, clients := loopbackHub(t, Config{PlainWrites: plain, WriteQueueBytes: 64 << 20}, members)
			h.rooms = map[int64]map[*Conn]struct{}{room: {}}
			for _, c := range conns {
				h.rooms[room][c] = struct{}{}
			}
			frames, want := numbered(0, 600, 20000) // 12 MB: past the socket buffers loopback TCP grows to
			var wg sync.WaitGroup
			got := make([][]string, members)
			errs := make([]error, members)
			read := func(i int) {
				defer wg.Done()
				got[i], errs[i] = readAll(clients[i], len(want))
			}
			// However the test ends, the readers end first.
			defer func() {
				for _, c := range clients {
					_ = c.SetReadDeadline(time.Now())
				}
				wg.Wait()
			}()
			for i := 1; i < members; i++ {
				wg.Add(1)
				go read(i)
			}
			f := &fanout{h: h}
			for _, fr := range frames {
				f.deliverFrame(room, fr)
			}
			if !plain {
				if f.ring == nil {
					if os.Getenv("CI") != "" {
						t.Fatal("no io_uring ring: the ring's path went untested")
					}
					t.Skip("io_uring is not allowed here")
				}
			}
			conns[0].mu.Lock()
			queued := conns[0].flushing || conns[0].queued > 0
			conns[0].mu.Unlock()
			if !queued {
				t.Fatal("the member that reads nothing had nothing queued: its socket never filled")
			}
			wg.Add(1)
			go read(0)
			wg.Wait()
			f.closeRing()
			for i := range members {
				if len(got[i]) != len(want) {
					t.Fatalf("member %d read %d of %d frames: %v", i, len(got[i]), len(want), errs[i])
				}
				for j := range want {
					if got[i][j] != want[j] {
						t.Fatalf("member %d, frame %d: got %.30q, want %.30q", i, j, got[i][j], want[j])
					}
				}
			}
		})
	}
}

// readAll reads n text frames from conn within 30 s, or those it read
// before an error.
func readAll(conn net.Conn, n int) ([]string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	var got []string
	for len(got) < n {
		f, err := ws.ReadFrame(r)
		if err != nil {
			return got, fmt.Errorf("after %d of %d frames: %w", len(got), n, err)
		}
		got = append(got, string(f.Payload))
	}
	return got, nil
}

// A ring whose call fails mid-broadcast costs that batch's connections
// (what reached their sockets is unknown, so no later frame could follow
// it: they are closed, having got nothing of the frame), and the fanout
// writes the rest of the room, and every later event, one by one.
func TestFanoutWhoseRingFailsDropsThatBatchAndGoesOnWithout(t *testing.T) {
	const room, members = 7, rawio.RingSize + 6
	h, conns, clients := loopbackHub(t, Config{}, members)
	h.rooms = map[int64]map[*Conn]struct{}{room: {}}
	for _, c := range conns {
		h.rooms[room][c] = struct{}{}
	}
	f := &fanout{h: h}
	if !f.ringReady() {
		if os.Getenv("CI") != "" {
			t.Fatal("no io_uring ring: the ring's path went untested")
		}
		t.Skip("io_uring is not allowed here")
	}
	_ = f.ring.Close() // every call on it fails from now on
	frames, want := numbered(0, 2, 10)
	f.deliverFrame(room, frames[0])
	if f.ring != nil || !f.noRing {
		t.Fatal("the fanout kept its failed ring")
	}
	f.deliverFrame(room, frames[1])
	dropped := 0
	for i, c := range conns {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		got, err := readAll(clients[i], len(want))
		switch {
		case closed:
			dropped++
			if len(got) != 0 || err == nil {
				t.Fatalf("member %d, dropped, read %q (%v); want nothing before the end", i, got, err)
			}
		case err != nil || got[0] != want[0] || got[1] != want[1]:
			t.Fatalf("member %d read %q (%v); want %q", i, got, err, want)
		}
	}
	if dropped != rawio.RingSize {
		t.Fatalf("%d members dropped, want the failed batch's %d", dropped, rawio.RingSize)
	}
}
