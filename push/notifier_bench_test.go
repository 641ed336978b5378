package push

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moim/chatlog"
)

// BenchmarkAccepted is what the send path pays per message for pushes:
// handing the draft to the gatherer, which folds it into its room's batch
// (the window is long, so nothing is resolved or sent meanwhile).
func BenchmarkAccepted(b *testing.B) {
	keys, err := LoadOrCreateKeys(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	n, err := New(Config{Keys: keys, Window: time.Hour}, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	n.Start(nil)
	defer n.Close()
	drafts := make([]*chatlog.Draft, 1000)
	for i := range drafts {
		drafts[i] = chatlog.NewDraft(int64(i%100+1), 7, "Minsu", "내일 7시 출발", "c", chatlog.KindText, 0, time.Now().UnixMilli())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		n.Accepted(drafts[i%len(drafts)], int64(i))
	}
}
