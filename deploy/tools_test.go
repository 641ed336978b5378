package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inCI is set by .ci/run, which installs every tool these tests call; there
// a missing tool fails the test instead of skipping it.
var inCI = os.Getenv("CI") == "true"

// needTool returns the path of a command, or stops the test when it is
// not installed: a failure under CI, a skip elsewhere.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		// Debian puts daemons such as nginx in /usr/sbin, which a
		// non-root PATH may lack.
		path, err = exec.LookPath(filepath.Join("/usr/sbin", name))
	}
	if err != nil {
		if inCI {
			t.Fatalf("CI=true but %s is not installed (Debian package %s; .ci/run installs it)", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	return path
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
