package deploy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// promConfig is the part of a Prometheus configuration the tests read.
type promConfig struct {
	RuleFiles     []string    `yaml:"rule_files"`
	ScrapeConfigs []scrapeJob `yaml:"scrape_configs"`
}

type scrapeJob struct {
	JobName       string `yaml:"job_name"`
	StaticConfigs []struct {
		Targets []string
	} `yaml:"static_configs"`
	DNSSDConfigs []struct {
		Names []string
		Type  string
		Port  int
	} `yaml:"dns_sd_configs"`
}

func (c promConfig) job(t *testing.T, name string) scrapeJob {
	t.Helper()
	for _, j := range c.ScrapeConfigs {
		if j.JobName == name {
			return j
		}
	}
	t.Fatalf("no scrape job %q: alerts.yml and the dashboard select job=%q", name, name)
	return scrapeJob{}
}

func readPrometheusConfig(t *testing.T, rel string) promConfig {
	return readYAML[promConfig](t, rel)
}

// readYAML decodes a repository file (path relative to the root).
func readYAML[T any](t *testing.T, rel string) T {
	t.Helper()
	var v T
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return v
}

// TestPromtool runs Prometheus's own checker on both stacks' configs
// (which load alerts.yml), on the rules alone, and the rules' unit tests:
// each alert fires on a bad series and stays quiet on a healthy one.
func TestPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "config", "prometheus-swarm.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		runTool(t, dir, time.Minute, promtool, args...)
	}
}
