package testkit

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Seeded is the random source of a seeded randomized test: the seed is
// env's value when set, else the clock's, and is logged so that a failure
// can be rerun with it; fail fails the test naming the seed.
func Seeded(t testing.TB, env string) (rng *rand.Rand, fail func(format string, args ...any)) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with %s=%d)", seed, env, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s", seed, fmt.Sprintf(format, args...))
	}
}
