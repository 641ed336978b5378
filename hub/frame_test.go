package hub

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// A frame compiled by hand is byte for byte what gobwas compiles, at each
// length encoding's edges, from bytes and from a string, and its payload
// is found again.
func TestCompileMatchesGobwas(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 0xffff, 0x10000, 0x10001} {
		payload := []byte(strings.Repeat("x", n))
		want, err := ws.CompileFrame(ws.NewFrame(ws.OpText, true, payload))
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]byte{"bytes": textFrame(payload), "string": textFrame(string(payload))} {
			if !bytes.Equal(got, want) {
				t.Fatalf("%d-byte payload from %s: frame header % x, want % x", n, name, got[:min(len(got), 10)], want[:min(len(want), 10)])
			}
			if p := framePayload(got); !bytes.Equal(p, payload) {
				t.Fatalf("%d-byte payload from %s: framePayload gave %d bytes", n, name, len(p))
			}
		}
	}
	want, _ := ws.CompileFrame(ws.NewPingFrame(nil))
	if !bytes.Equal(pingFrame, want) {
		t.Fatalf("ping frame % x, want % x", pingFrame, want)
	}
}
