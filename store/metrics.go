package store

import "github.com/prometheus/client_golang/prometheus"

type batcherMetrics struct {
	stored prometheus.Counter
	batch  prometheus.Histogram
	flush  prometheus.Histogram
	errors prometheus.Counter
	// conflicts counts messages refused because their (room, seq) named a
	// different stored message.
	conflicts prometheus.Counter
}

func newBatcherMetrics(reg prometheus.Registerer, b *Batcher) *batcherMetrics {
	m := &batcherMetrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_store_messages_stored_total", Help: "Messages written to the message store by this node's batcher."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "moim_store_batch_size", Help: "Messages per InsertMany.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000},
		}),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "moim_store_flush_seconds", Help: "Duration of one successful batch write.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		errors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_store_errors_total", Help: "Failed batch writes (each retried)."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_store_conflicts_total", Help: "Messages refused because their (room, seq) already named a different stored message (kept in the store's conflicts)."}),
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moim_store_backlog", Help: "Accepted messages still in Redis, not yet stored (all shards).",
	}, func() float64 { n, _ := b.Backlog(); return float64(n) })
	oldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moim_store_oldest_unstored_seconds", Help: "Age of the oldest accepted message not yet stored.",
	}, func() float64 { _, age := b.Backlog(); return age.Seconds() })
	reg.MustRegister(m.stored, m.batch, m.flush, m.errors, m.conflicts, backlog, oldest)
	return m
}
