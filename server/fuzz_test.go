package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// inputBudget bounds one input, connecting included. The fuzz engine
// kills a worker whose input runs 10 s (a bare "deadlocked!" panic, the
// reason lost), so a missing pong has to fail the input before that.
const inputBudget = 8 * time.Second

// clientFault holds the error codes docs/PROTOCOL.md gives for bad requests.
var clientFault = map[string]bool{"bad_request": true, "validation": true, "forbidden": true, "not_found": true, "not_member": true, "rate_limited": true}

// FuzzClientMessages sends one arbitrary protocol message per input, of
// every type the protocol knows and others, to a real node over a real
// WebSocket, then a ping: whatever the message, the node answers and keeps
// the connection (or closes it with a proper code) and the pong follows.
// Its seeds run with the other tests; `make test` then fuzzes it for a
// number of inputs:
//
//	go test -run '^$' -fuzz '^FuzzClientMessages$' -fuzztime 3000x ./server
//
// Under -fuzz every worker process runs this function from the top, so
// each fuzzes its own node (own database and Redis prefix); the
// coordinator process starts one too but never runs an input.
func FuzzClientMessages(f *testing.F) {
	log := &inputLog{F: f}
	n := startBenchNode(log, benchConfig(f))
	alice, bob := n.user(f, "Alice"), n.user(f, "Bob")
	room := alice.createRoom(map[string]any{"name": "Fuzz", "member_ids": []int64{bob.id}}).ID
	for _, s := range []struct {
		typ, cid, body string
		room, seq      int64
	}{
		{"send", "c1", "hello 안녕", room, 0},
		{"send", "c:2", "colon in cid", room, 0},
		{"send", "c3", strings.Repeat("가", 4001), room, 0},
		{"send", "", "no cid", room, 0},
		{"send", "c4", "", room, 0},
		{"send", "c5", "not my room", room + 1000, 0},
		{"sync", "", "", room, 0},
		{"sync", "", "", room, -5},
		{"read", "", "", room, 1},
		{"read", "", "", room, 1 << 62},
		{"typing", "", "", room, 0},
		{"delete", "", "", room, 1},
		{"delete", "", "", room, 0},
		{"ping", "", "", 0, 0},
		{"subscribe", "", "", room, 0},
		{"", "", "", 0, 0},
	} {
		f.Add(s.typ, s.room, s.cid, s.body, s.seq)
	}
	log.fuzzing(true)
	defer log.fuzzing(false)
	f.Fuzz(func(t *testing.T, typ string, roomID int64, cid, body string, seq int64) {
		start := time.Now()
		log.input(t)
		defer log.input(nil)
		c := *alice
		c.t = t
		w := n.connect(&c)
		defer w.conn.Close()
		w.send(map[string]any{"type": typ, "room": roomID, "cid": cid, "body": body, "seq": seq, "reply_to": seq,
			"rooms": map[string]int64{fmt.Sprint(roomID): seq}})
		w.send(map[string]any{"type": "ping"})
		for {
			m, err := w.read(time.Until(start.Add(inputBudget)))
			if err != nil {
				t.Fatalf("%s %d %q %q %d: no pong within %s: %v", typ, roomID, cid, body, seq, inputBudget, err)
			}
			// With every backend up, bad input is the client's fault:
			// never "unavailable", never an undocumented code.
			if m.Type == "error" && !clientFault[m.Code] {
				t.Fatalf("%s %d %q %q %d: error %s: %s", typ, roomID, cid, body, seq, m.Code, m.Message)
			}
			if m.Type == "pong" {
				return
			}
		}
	})
}

// inputLog is f as the node's testing.TB, with the node's log lines sent to
// the input running when they are written: testing panics on f.Log while
// the fuzz function runs, and from a node goroutine that panic kills the
// fuzz worker ("exit status 2") and blames the input of the moment.
type inputLog struct {
	*testing.F
	mu      sync.Mutex
	inFuzz  bool       // within f.Fuzz, where f.Log is off limits
	running *testing.T // the input running, if any
}

// Log writes a node log line to the running input's log; within f.Fuzz
// between inputs, to stderr (which a fuzz worker drops).
func (l *inputLog) Log(args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.running != nil:
		l.running.Log(args...)
	case l.inFuzz:
		fmt.Fprintln(os.Stderr, args...)
	default:
		l.F.Log(args...)
	}
}

func (l *inputLog) fuzzing(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFuzz = on
}

func (l *inputLog) input(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = t
}
