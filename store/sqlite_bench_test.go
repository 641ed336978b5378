package store

import (
	"context"
	"fmt"
	"testing"

	"moim/chatlog"
)

// BenchmarkCommit is the single-node engine's group commit: one
// transaction of n messages spread over 100 rooms, per sync mode.
//
//	go test -run '^$' -bench Commit -benchtime 2000x ./store
func BenchmarkCommit(b *testing.B) {
	for _, sync := range []Sync{SyncNormal, SyncFull} {
		for _, n := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("%s/batch=%d", sync, n), func(b *testing.B) {
				st, err := OpenSQLite(b.TempDir(), sync)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				ctx := context.Background()
				b.ReportAllocs()
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
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "µs/msg")
			})
		}
	}
}
