package push

import (
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moim/chatlog"
	"moim/sqldb"
)

// BenchmarkAccepted is what the send path pays per message for pushes
// (ns/op), and what the whole process pays, the gatherer included
// (cpu-ns/op).
// In a quiet room (nobody there has a subscription) that is a lookup in
// the set of watched rooms; in a watched room, handing the draft to the
// gatherer, which folds it into its room's batch (the window is long, so
// nothing is resolved or sent meanwhile).
func BenchmarkAccepted(b *testing.B) {
	for _, bc := range []struct {
		name    string
		watched bool
	}{{"quiet room", false}, {"watched room", true}} {
		b.Run(bc.name, func(b *testing.B) {
			n := startBenchNotifier(b, bc.watched)
			drafts := make([]*chatlog.Draft, 1000)
			for i := range drafts {
				drafts[i] = chatlog.NewDraft(int64(i%100+1), 7, "Minsu", "내일 7시 출발", "c", chatlog.KindText, 0, time.Now().UnixMilli())
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime(b)
			for i := range b.N {
				n.Accepted(drafts[i%len(drafts)], int64(i))
			}
			// The gatherer's share runs on its own goroutine: the process's
			// CPU time counts it too, once the queue has drained.
			for len(n.in) > 0 {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkAcceptedPaced hands over one message a millisecond, the
// 1000 msg/s of the end-to-end run, so the gatherer sleeps between
// messages as it does on a node: waking it is most of what a watched
// room costs (cpu-ns/op, the whole process). Run with -benchtime 2000x.
func BenchmarkAcceptedPaced(b *testing.B) {
	for _, bc := range []struct {
		name    string
		watched bool
	}{{"quiet room", false}, {"watched room", true}} {
		b.Run(bc.name, func(b *testing.B) {
			n := startBenchNotifier(b, bc.watched)
			d := chatlog.NewDraft(1, 7, "Minsu", "내일 7시 출발", "c", chatlog.KindText, 0, time.Now().UnixMilli())
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			start := cpuTime(b)
			for i := range b.N {
				<-tick.C
				n.Accepted(d, int64(i))
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startBenchNotifier runs a notifier on a fresh SQLite database whose
// rooms 1 to 100 each have ten members; with watched, one member of each
// holds a subscription.
func startBenchNotifier(b *testing.B, watched bool) *Notifier {
	keys, err := LoadOrCreateKeys(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqldb.OpenSQLite(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Exec("CREATE TABLE members (room_id INTEGER, user_id INTEGER, muted BOOLEAN NOT NULL DEFAULT false)").Error; err != nil {
		b.Fatal(err)
	}
	n, err := New(Config{Keys: keys, Window: time.Hour}, db, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Migrate(); err != nil {
		b.Fatal(err)
	}
	for room := int64(1); room <= 100; room++ {
		for u := room * 10; u < room*10+10; u++ {
			if err := db.Exec("INSERT INTO members (room_id, user_id) VALUES (?, ?)", room, u).Error; err != nil {
				b.Fatal(err)
			}
		}
		if watched {
			sub := Subscription{UserID: room * 10, Hash: endpointHash(fmt.Sprint(room)), Endpoint: fmt.Sprintf("https://push.example.com/%d", room), P256dh: "p", Auth: "a", CreatedAt: time.Now()}
			if err := db.Create(&sub).Error; err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := n.Start(nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		n.Close()
		if sql, err := db.DB(); err == nil {
			_ = sql.Close()
		}
	})
	if got := len(*n.rooms.Load()); watched && got != 100 || !watched && got != 0 {
		b.Fatalf("%d rooms watched, want %d", got, map[bool]int{true: 100}[watched])
	}
	return n
}
