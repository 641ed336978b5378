package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"moim/internal/apiclient"
)

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct{ base string }

// get decodes the "data" of an API answer into out.
func (p *prometheus) get(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("invalid: %s", body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// query evaluates expr now and returns how many series it yields.
func (p *prometheus) query(expr string) (int, error) {
	var data struct {
		ResultType string
		Result     json.RawMessage
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	if data.ResultType != "vector" && data.ResultType != "matrix" {
		return 1, nil // a scalar or string always has a value
	}
	var series []json.RawMessage
	if err := json.Unmarshal(data.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// scalar is the value of an expression that yields one series.
func (p *prometheus) scalar(expr string) (float64, error) {
	var data struct {
		Result []struct{ Value [2]any }
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	if len(data.Result) != 1 {
		return 0, fmt.Errorf("%d series", len(data.Result))
	}
	s, _ := data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// waitFor retries cond for up to 30 s: scrapes and rule evaluations run
// every second.
func (p *prometheus) waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sampleNames are the sample names in a node's /metrics exposition.
func sampleNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	base, _ := strings.CutSuffix(url, "/metrics")
	m, err := (&apiclient.Client{Base: base}).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.SampleNames()
}
