package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	framesIn    prometheus.Counter
	framesOut   prometheus.Counter
	accepted    prometheus.Counter
	deliveries  prometheus.Counter
	latency     prometheus.Histogram
	errors      *prometheus.CounterVec
	slowCloses  prometheus.Counter
	framesHeld  prometheus.Counter
	// acks counts WebSocket acks by how they went: with the sender's own
	// msg in one write, or alone (ack.go).
	acks *prometheus.CounterVec
	// redisRTT is the ack latency: queueing for a pipeline plus its round
	// trip. roundTrip is the round trip alone, so the two tell a busy
	// pipeline from a slow Redis.
	redisRTT  prometheus.Histogram
	roundTrip prometheus.Histogram
	// resubscribes counts pub/sub shard connections replaced because
	// their probe went unanswered.
	resubscribes prometheus.Counter
	// gaps counts seq ranges recorded as possibly naming lost messages.
	gaps prometheus.Counter
	// restores counts room seq counters the Redis broker set out to
	// restore, each a read of the store.
	restores prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "moim_hub_connections", Help: "Open WebSocket connections on this node."}),
		framesIn:    prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_frames_in_total", Help: "WebSocket frames received."}),
		framesOut:   prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_frames_out_total", Help: "WebSocket frames written (or queued) to clients."}),
		accepted:    prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_messages_accepted_total", Help: "Chat messages stored in Redis and acknowledged."}),
		deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_deliveries_total", Help: "Messages written to local recipients."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moim_hub_delivery_latency_seconds",
			Help:    "From a message's acceptance to its frame being written to a local recipient.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		errors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moim_hub_errors_total", Help: "Error events sent to clients, by code."}, []string{"code"}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_slow_consumer_closes_total", Help: "Connections closed with 1013 because their write queue overflowed."}),
		framesHeld: prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_frames_held_total", Help: "Frames held up to 150 ms while this node is behind (moim_hub_send_share below 1), to be written with the connection's others in one writev."}),
		acks:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moim_hub_acks_total", Help: "Acks of WebSocket sends, by how they were written: with the sender's own copy of the msg in one write (with_msg), or alone (alone: a duplicate send, or its msg did not come within 2 ms)."}, []string{"written"}),
		redisRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moim_hub_redis_send_seconds",
			Help:    "Ack latency of a send: from handing it to the Redis pipeline to the send script's answer (queueing plus round trip); the ack is written right after.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}),
		roundTrip: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moim_hub_redis_roundtrip_seconds",
			Help:    "One pipelined round trip to Redis carrying a batch of send scripts.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}),
		resubscribes: prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_pubsub_resubscribes_total", Help: "Pub/sub shard connections replaced because this node's probe did not come back on them."}),
		gaps:         prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_seq_gaps_total", Help: "Seq ranges recorded as gaps: a restored counter skipped reserved seqs that may have named messages Redis lost before they were stored."}),
		restores:     prometheus.NewCounter(prometheus.CounterOpts{Name: "moim_hub_seq_restores_total", Help: "Room seq counters restored from the message store (each reads it) because Redis lost them or came back with older data: once per active room after a Redis restart or failover, never for a new room."}),
	}
	reg.MustRegister(m.connections, m.framesIn, m.framesOut, m.accepted, m.deliveries, m.latency, m.errors, m.slowCloses, m.framesHeld, m.acks, m.redisRTT, m.roundTrip, m.resubscribes, m.gaps, m.restores)
	return m
}
