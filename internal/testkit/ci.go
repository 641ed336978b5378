// Package testkit is what the tests of every package share: the skip
// locally / fail under CI=true rule, the real services named by
// MOIM_TEST_*, free ports, child processes (a built server binary, a
// private redis-server), and a Moim client bound to a test (Client, WS)
// over internal/apiclient.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI=true (.ci/run), which
// installs every tool and service the tests use.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing stops a test whose tool or service is absent: under CI=true a
// failure (CI installs everything, so absence is a broken setup), a skip
// elsewhere. why says what is missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true but %s", why)
	}
	t.Skip(why)
}

// Tool is the path of the first of names installed (on PATH, or in
// /usr/sbin, where Debian puts daemons such as nginx that a non-root
// PATH may lack); Missing with hint when there is none.
func Tool(t testing.TB, hint string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p, err := exec.LookPath(filepath.Join("/usr/sbin", name)); err == nil {
			return p
		}
	}
	Missing(t, "%s is not installed (%s)", names[0], hint)
	return ""
}

// Optional is the service URL in env, or "" (logged) when it is unset and
// the test can go on with what it has; under CI=true unset fails.
func Optional(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if InCI() {
			t.Fatalf("CI=true but %s is not set: %s (make test starts one)", env, what)
		}
		t.Logf("%s not set: %s", env, what)
	}
	return v
}
