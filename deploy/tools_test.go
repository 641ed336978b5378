package deploy

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

// needTool returns the path of a command, or stops the test when it is
// not installed: a failure under CI (.ci/run installs every tool these
// tests call), a skip elsewhere.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	return testkit.Tool(t, "Debian package "+pkg+"; .ci/run installs it", name)
}

// repoRoot is the repository's top directory (tests run in deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runTool runs a command in dir with a deadline and returns its stdout;
// a non-zero exit fails the test with both outputs.
func runTool(t *testing.T, dir string, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}
