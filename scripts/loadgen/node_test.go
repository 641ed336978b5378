package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"
)

// startNode builds the server and starts a zero-setup node with the
// load-test settings loadgen's doc comment gives plus env, stopped by its
// PID when the test ends; it returns the node's base URL.
func startNode(t *testing.T, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "moim")
	build := exec.Command("go", "build", "-o", bin, "moim/server")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building the node: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	env = append(append(os.Environ(), "MOIM_ADDR="+addr, "MOIM_DATA_DIR="+filepath.Join(dir, "data"),
		"MOIM_BCRYPT_COST=4", "MOIM_SEND_RATE=1000", "MOIM_SEND_BURST=1000", "MOIM_SEND_LIMIT=off",
		"MOIM_SIGNUP_LIMIT=off", "MOIM_UPGRADE_LIMIT=off", "MOIM_INVITE_RULE=anyone", "MOIM_LOG_LEVEL=warn"), env...)
	node := testkit.Start(t, dir, "node", env, bin)
	base := "http://" + addr
	node.WaitHTTP(t, base+"/readyz", 60*time.Second)
	return base
}

// lastResult decodes loadgen's last JSON result line in out into v.
func lastResult(t *testing.T, out []byte, v any) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	found := false
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Fatalf("result line %s: %v", line, err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("loadgen printed no result line")
	}
}

// runLoadgen runs this generator with args (go run), logs what it printed
// and returns its standard output and exit error.
func runLoadgen(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	gen := exec.Command("go", append([]string{"run", "."}, args...)...)
	var out bytes.Buffer
	gen.Stdout, gen.Stderr = &out, os.Stderr
	err := gen.Run()
	t.Logf("loadgen:\n%s", out.String())
	return out.Bytes(), err
}
