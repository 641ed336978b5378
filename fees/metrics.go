package fees

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"moim/api"
)

type metrics struct {
	transfers *prometheus.CounterVec
	duration  prometheus.Histogram
	runs      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_fee_transfers_total",
			Help: "Money moves by kind (deposit, dues, spend, refund) and result: done, replayed (same key again), refused (e.g. insufficient_funds) or failed.",
		}, []string{"kind", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "moim_fee_transfer_seconds", Help: "Duration of one transfer, retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_fee_schedule_runs_total",
			Help: "Auto-pay runs finished by this node, by status: done, failed (e.g. insufficient_funds) or skipped (already paid, cancelled).",
		}, []string{"status"}),
	}
	for _, st := range []string{runDone, runFailed, runSkipped} {
		m.runs.WithLabelValues(st) // exported at zero, so rates and sums see every status
	}
	reg.MustRegister(m.transfers, m.duration, m.runs)
	return m
}

// observe counts one transfer's outcome.
func (m *metrics) observe(kind string, t *Transfer, err error, seconds float64) {
	result := "done"
	var ae *api.Error
	switch {
	case err != nil && errors.As(err, &ae):
		result = "refused"
	case err != nil:
		result = "failed"
	case t != nil && t.Replayed:
		result = "replayed"
	}
	m.transfers.WithLabelValues(kind, result).Inc()
	m.duration.Observe(seconds)
}
