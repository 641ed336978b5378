package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"
)

// TestChaosUnderLoad runs every scenario as real processes: three Moim
// nodes, a standalone FerretDB, the test Redis and MariaDB (a Redis
// Cluster with replicas of its own for redis-failover), 300 loadgen users
// sending 300 messages a second, and one fault each. A scenario fails
// when an acked message is lost, delivered or stored twice, arrives out
// of order, or the scenario's own promise breaks (see main.go). The
// binaries, the chaos driver included, are built without -race: the
// processes under test and the 1000-connection storm run as they would in
// production, and the storm's 1 s bar is about them.
func TestChaosUnderLoad(t *testing.T) {
	redisURL := testkit.ServiceURL(t, testkit.EnvRedis, "redis-server for the chaos scenarios")
	mysqlDSN := testkit.ServiceURL(t, testkit.EnvMySQL, "MariaDB for the chaos scenarios")
	repo, err := findRepo()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := build(ctx, repo, bin, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", filepath.Join(bin, "chaos"), "./scripts/chaos")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./scripts/chaos: %v\n%s", err, b)
	}
	for _, name := range scenarioNames() {
		t.Run(name, func(t *testing.T) {
			if scenarioByName(name).cluster {
				for _, tool := range []string{"redis-server", "redis-cli"} {
					testkit.Tool(t, "the Redis Cluster scenario needs it", tool)
				}
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "chaos"), "-bin", bin, "-scenarios", name,
				"-duration", "20s", "-redis", redisURL, "-mysql", mysqlDSN, "-work", t.TempDir())
			cmd.Dir = repo
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			t.Log(strings.TrimSpace(stdout.String()))
			if err != nil {
				t.Logf("loadgen and driver progress:\n%s", lastLines(stderr.String(), 60))
				t.Fatalf("chaos -scenarios %s: %v", name, err)
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
