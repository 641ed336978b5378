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
