package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// panel is a Grafana dashboard panel; rows may nest panels.
type panel struct {
	Title      string
	Type       string
	Datasource *struct{ Type, UID string }
	Targets    []struct {
		Expr       string
		RefID      string `json:"refId"`
		Datasource *struct{ Type, UID string }
	}
	Panels []panel
}

type dashboard struct {
	UID    string
	Title  string
	Panels []panel
}

// query is one PromQL expression and where it comes from.
type query struct {
	where string
	expr  string
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/grafana/dashboards/moim.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("moim.json: %v", err)
	}
	return d
}

func (d dashboard) all() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars are the interval variables Grafana fills in; a live check
// uses one minute, several scrapes at its one-second interval.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1m")

// queries are the dashboard's expressions with Grafana's variables set.
func (d dashboard) queries() []query {
	var out []query
	for _, p := range d.all() {
		for _, tg := range p.Targets {
			out = append(out, query{fmt.Sprintf("panel %q (%s)", p.Title, tg.RefID), grafanaVars.Replace(tg.Expr)})
		}
	}
	return out
}

// rules are the alerting rules of deploy/prometheus/alerts.yml.
type rules struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert string
			Expr  string
			For   string
		}
	}
}

// threshold splits "<measure> <comparison> <number>", the shape every
// alert in alerts.yml has, so the measure can be evaluated alone.
var threshold = regexp.MustCompile(`^(?s)(.*\S)\s*(==|!=|>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$`)

// metricNames are the metric names an expression selects: identifiers of
// Moim's, Go's and the process collector's families, and "up".
func metricNames(expr string) []string {
	expr = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	return regexp.MustCompile(`\b(?:(?:moim|go|process)_[a-zA-Z0-9_]+|up)\b`).FindAllString(expr, -1)
}

// TestDashboardShape checks what Grafana needs to show the dashboard
// without anyone clicking: a uid, the panels the operators rely on, and
// every query on the provisioned data source.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	ds := readYAML[struct {
		Datasources []struct {
			UID, Type string
			IsDefault bool `yaml:"isDefault"`
		}
	}](t, "deploy/grafana/provisioning/datasources/prometheus.yml")
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault {
		t.Fatalf("provisioning must give one default Prometheus data source: %+v", ds)
	}
	uid := ds.Datasources[0].UID
	if d.UID == "" || d.Title == "" {
		t.Fatal("the dashboard needs a uid and a title (stable links, provisioning)")
	}
	titles := map[string]bool{}
	for _, p := range d.all() {
		titles[p.Title] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != uid || len(p.Targets) == 0 {
			t.Errorf("panel %q must query the provisioned data source %q", p.Title, uid)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != uid || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: no expression on data source %q", p.Title, tg.RefID, uid)
			}
		}
	}
	// The panels issue 7 asks for.
	for _, want := range []string{
		"WebSocket connections per node", "Messages accepted/s and deliveries/s", "Delivery latency p50 / p99",
		"Ack latency p50 / p99", "Persistence backlog", "Oldest unstored message", "Store flushes/s and messages stored/s",
		"Store batch size", "HTTP latency p99 by route", "Fee transfers/s and failures", "Redis round trip p50 / p99",
		"Goroutines per node", "Resident memory per node",
	} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}
