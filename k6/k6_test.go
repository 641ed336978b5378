// Package k6 holds the k6 load-test scripts (JavaScript, see README.md).
// k6 cannot be installed on the project's machines, so this test has node
// parse each script as the ES module k6 loads, shim_test.go checks the
// stand-in modules in shim/ behave like k6, and server/k6_test.go runs the
// scripts under them against a real node.
package k6

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"moim/internal/testkit"
)

// nodeBinary finds node; under CI=true (.ci/run installs it) a missing node
// fails instead of skipping.
func nodeBinary(t *testing.T) string {
	t.Helper()
	return testkit.Tool(t, "the k6 scripts cannot be checked; .ci/run installs nodejs", "node", "nodejs")
}

// parseModule runs node's parser on src as an ES module. A .mjs copy makes
// node parse it as a module whatever its version and any package.json.
func parseModule(t *testing.T, node, dir, name string, src []byte) error {
	t.Helper()
	copyPath := filepath.Join(dir, strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))+".mjs")
	if err := os.WriteFile(copyPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "--check", copyPath).CombinedOutput()
	if err != nil {
		return &parseError{name: name, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type parseError struct{ name, out string }

func (e *parseError) Error() string { return e.name + " does not parse as an ES module:\n" + e.out }

func TestScriptsParseAsESModules(t *testing.T) {
	node := nodeBinary(t)
	scripts, err := filepath.Glob("*.js")
	if err != nil {
		t.Fatal(err)
	}
	shim, err := filepath.Glob("shim/*.mjs")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"chat.js", "fees.js"} {
		found := false
		for _, s := range scripts {
			found = found || s == want
		}
		if !found {
			t.Errorf("k6/%s is missing", want)
		}
	}
	if len(shim) == 0 {
		t.Error("k6/shim/*.mjs is missing")
	}
	dir := t.TempDir()
	for _, f := range append(scripts, shim...) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseModule(t, node, dir, f, src); err != nil {
			t.Error(err)
		}
	}
	// The check must be able to fail: a syntax error, and a top-level return
	// (which only CommonJS allows), are rejected.
	for name, src := range map[string]string{
		"broken.js":          "import http from 'k6/http';\nexport default function () { http.get('x' }\n",
		"toplevel-return.js": "import http from 'k6/http';\nreturn http;\n",
	} {
		if parseModule(t, node, dir, name, []byte(src)) == nil {
			t.Errorf("node accepted %s, which is not a valid ES module", name)
		}
	}
}
