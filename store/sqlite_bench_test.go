package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"moim/chatlog"
)

// BenchmarkCommit is the single-node engine's group commit: one
// transaction of n messages spread over 100 rooms, per sync mode, alone
// and with readers beside it (as sync and history read while the node
// takes messages). Besides wall time per message it reports the process's
// CPU time per message, which a busy shared host disturbs far less.
//
//	go test -run '^$' -bench Commit -benchtime 2000x ./store
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []Sync{SyncNormal, SyncFull} {
		for _, n := range []int{1, 16, 128} {
			for _, readers := range []int{0, 2} {
				b.Run(fmt.Sprintf("%s/batch=%d/readers=%d", mode, n, readers), func(b *testing.B) {
					benchCommit(b, mode, n, readers)
				})
			}
		}
	}
}

func benchCommit(b *testing.B, mode Sync, n, readers int) {
	st, err := OpenSQLite(b.TempDir(), mode)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				room := int64((i+r)%100 + 1)
				if _, err := st.After(ctx, room, 0, 20); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	b.ReportAllocs()
	cpu0, w0, c0 := cpuTime(), written(), writeCalls()
	b.ResetTimer()
	for i := range b.N {
		batch := &chatlog.Batch{Drafts: make([]*chatlog.Draft, n)}
		for j := range batch.Drafts {
			k := i*n + j
			batch.Drafts[j] = chatlog.NewDraft(int64(k%100+1), 7, "김민지", "오늘 저녁 7시 강남역 2번 출구에서 만나요! Bring the slides", fmt.Sprint("c", k), chatlog.KindText, 0, 1)
		}
		if err := st.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu, w, calls := cpuTime()-cpu0, written()-w0, writeCalls()-c0
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "µs/msg")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n)/1000, "cpu-µs/msg")
	b.ReportMetric(float64(w)/float64(b.N*n), "written-B/msg")
	b.ReportMetric(float64(calls)/float64(b.N*n), "write-calls/msg")
}

// written is how many bytes this process has passed to write calls
// (/proc/self/io's wchar; 0 where there is none), the log's write
// amplification in bytes, which a busy host does not disturb.
func written() int64 { return procIO("wchar: ") }

// writeCalls is how many write calls (write, pwrite) this process has
// made (/proc/self/io's syscw), a count a busy host does not disturb.
func writeCalls() int64 { return procIO("syscw: ") }

func procIO(field string) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsert is the batcher's write into a node's own SQLite store
// (the Redis path without MongoDB): n messages over 100 rooms per call,
// as a batch of 100 ms and of a second at 1000 messages a second.
//
//	go test -run '^$' -bench Insert -benchtime 20000x -benchmem ./store
func BenchmarkInsert(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchInsert(b, n) })
	}
}

// benchInsert writes b.N messages in batches of n.
func benchInsert(b *testing.B, n int) {
	st, err := OpenSQLite(b.TempDir(), SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	batches := make([][]chatlog.Entry, (b.N+n-1)/n) // built first: decoding entries is not the write
	for i := range batches {
		batches[i] = make([]chatlog.Entry, n)
		for j := range batches[i] {
			k := int64(i*n + j)
			batches[i][j] = entry(k%100+1, k/100+1, 7, fmt.Sprint("c", k), "오늘 저녁 7시 강남역 2번 출구에서 만나요! Bring the slides")
		}
	}
	msgs := len(batches) * n
	b.ReportAllocs()
	cpu0, c0 := cpuTime(), writeCalls()
	b.ResetTimer()
	for _, batch := range batches {
		if err := st.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(msgs)/1000, "µs/msg")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(msgs)/1000, "cpu-µs/msg")
	b.ReportMetric(float64(writeCalls()-c0)/float64(msgs), "write-calls/msg")
}

// BenchmarkMoves is the journal and its moves into the messages table at
// the rates of the benchmarks' top stage: 500 rooms, each slice of rooms
// moved in turn, with per messages of each room in each move (a round of
// 1 s at 5,000 messages a second is 10, of 4 s 40): the more of a room's
// messages a move writes at once, the fewer pages per message it writes.
//
//	go test -run '^$' -bench Moves -benchtime 8x ./store
func BenchmarkMoves(b *testing.B) {
	for _, per := range []int{10, 40} {
		b.Run(fmt.Sprintf("per-room=%d", per), func(b *testing.B) { benchMoves(b, per) })
	}
}

func benchMoves(b *testing.B, per int) {
	st, err := OpenSQLite(b.TempDir(), SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const rooms = 500
	rounds := make([][]chatlog.Entry, b.N) // built first: decoding entries is not the write
	for r := range rounds {
		for i := range per {
			for room := int64(1); room <= rooms; room++ {
				seq := int64(r*per + i + 1)
				rounds[r] = append(rounds[r], entry(room, seq, 7, fmt.Sprint("c", room, "-", seq), "오늘 저녁 7시 강남역 2번 출구에서 만나요! Bring the slides"))
			}
		}
	}
	cpu0, c0 := cpuTime(), writeCalls()
	b.ResetTimer()
	for _, round := range rounds {
		for batch := range slices.Chunk(round, 50) {
			if err := st.Journal(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		st.wmu.Lock()
		st.mu.Lock()
		for slice := range moveSlices {
			if err := st.move(ctx, noSlice.with(slice), nil); err != nil {
				b.Fatal(err)
			}
		}
		st.mu.Unlock()
		st.wmu.Unlock()
	}
	b.StopTimer()
	msgs := float64(b.N * per * rooms)
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/msgs/1000, "cpu-µs/msg")
	b.ReportMetric(float64(writeCalls()-c0)/msgs, "write-calls/msg")
}
