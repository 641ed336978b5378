package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// httpMetrics counts requests by route pattern (not raw path, so ids do
// not explode the label space) and times them.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moim_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// middleware records every request. Errors are rendered here rather than
// after the chain so the recorded status is the one the client sees.
func (m *httpMetrics) middleware(c *fiber.Ctx) error {
	start := time.Now()
	self := c.Route()
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			return herr
		}
	}
	// The route is still this middleware's own when nothing matched; raw
	// paths would let any client grow the label space without bound.
	path := "unmatched"
	if r := c.Route(); r != self {
		path = r.Path
	}
	// fiber's strings alias the request buffer; labels outlive it.
	method := strings.Clone(c.Method())
	m.requests.WithLabelValues(path, method, strconv.Itoa(c.Response().StatusCode())).Inc()
	m.duration.WithLabelValues(path, method).Observe(time.Since(start).Seconds())
	return nil
}
