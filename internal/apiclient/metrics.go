package apiclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one /metrics exposition, by name.
type Metrics map[string]*dto.MetricFamily

// ParseMetrics reads Prometheus text exposition format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return Metrics(fams), nil
}

// Metrics reads the node's /metrics.
func (c *Client) Metrics(ctx context.Context) (Metrics, error) {
	status, raw, err := c.Raw(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, ParseError(status, raw)
	}
	return ParseMetrics(bytes.NewReader(raw))
}

// Has reports whether the exposition has a family name.
func (m Metrics) Has(name string) bool { _, ok := m[name]; return ok }

// Sum adds the samples of a counter, gauge or untyped family over every
// label set; a histogram or summary counts its observations. A missing
// family is 0.
func (m Metrics) Sum(name string) float64 {
	var sum float64
	if f, ok := m[name]; ok {
		for _, s := range f.GetMetric() {
			sum += sampleValue(s)
		}
	}
	return sum
}

// Value is the sample of name whose labels include every pair in labels
// ("k1", "v1", "k2", "v2", …); false when there is none.
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	f, ok := m[name]
	if !ok {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if hasLabels(s, labels) {
			return sampleValue(s), true
		}
	}
	return 0, false
}

func hasLabels(s *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Summary != nil:
		return float64(s.Summary.GetSampleCount())
	}
	return 0
}

// SampleNames are the names samples carry in the text format: a family's
// name, and for a histogram or summary also its _bucket, _sum and _count
// series (what a PromQL expression names).
func (m Metrics) SampleNames() map[string]bool {
	out := map[string]bool{}
	for name, f := range m {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// Sample is the value of one series named as the text format names it:
// `name` or `name{label="value",…}` (labels in any order, a subset
// matches); false when there is none.
func (m Metrics) Sample(series string) (float64, bool) {
	name, rest, ok := strings.Cut(series, "{")
	if !ok {
		return m.Value(name)
	}
	var labels []string
	for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(strings.TrimSpace(v)); err == nil {
			v = u
		}
		labels = append(labels, strings.TrimSpace(k), v)
	}
	return m.Value(name, labels...)
}
