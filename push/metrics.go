package push

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sent    *prometheus.CounterVec
	dropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_push_posts_total", Help: "Posts to push services by result: ok, gone (subscription dropped), refused, error.",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moim_push_dropped_total", Help: "Pushes dropped because a queue was full (never waited for on the send path).",
		}),
	}
	reg.MustRegister(m.sent, m.dropped)
	return m
}
