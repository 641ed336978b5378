package push

import (
	"path/filepath"
	"testing"
)

// TestKeysAreKeptInADataDirectoryNotYetMade: a node with external
// backends may start before anything made its data directory; the pair it
// generates is kept there and read back on the next start.
func TestKeysAreKeptInADataDirectoryNotYetMade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "node-1")
	first, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first != again || first.Public == "" {
		t.Fatalf("keys after a restart %+v, want the generated %+v", again, first)
	}
}
