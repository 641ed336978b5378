package hub

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzParseFrame feeds arbitrary bytes to the frame parser: it must never
// panic or read past its input, and a frame it accepts must be a masked
// client frame of at most 64 KiB whose payload gobwas unmasks the same way.
//
//	go test -run '^$' -fuzz '^FuzzParseFrame$' -fuzztime 100000x ./hub   # a count: go.dev/issue/75804
func FuzzParseFrame(f *testing.F) {
	for _, p := range [][]byte{[]byte(`{"type":"ping"}`), {}, bytes.Repeat([]byte("가"), 200), bytes.Repeat([]byte{0}, 70_000)} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPing, ws.OpContinuation, ws.OpClose} {
			frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(op, true, p)))
			if err == nil {
				f.Add(frame)
				f.Add(frame[:len(frame)/2])
			}
		}
	}
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, buf []byte) {
		orig := append([]byte(nil), buf...)
		h, payload, used, err := parseFrame(buf)
		var ce *closeError
		switch {
		case errors.Is(err, errIncomplete):
			return
		case errors.As(err, &ce):
			if ce.code == 0 || ce.reason == "" {
				t.Fatalf("a refusal without a close code or reason: %+v", ce)
			}
			return
		case err != nil:
			t.Fatalf("unexpected error %v", err)
		}
		if used <= 0 || used > len(buf) || int64(len(payload)) != h.Length || h.Length > MaxMessage || !h.Masked {
			t.Fatalf("accepted %+v: used %d of %d, payload %d", h, used, len(buf), len(payload))
		}
		want := append([]byte(nil), orig[used-len(payload):used]...)
		ws.Cipher(want, h.Mask, 0)
		if !bytes.Equal(payload, want) {
			t.Fatal("payload unmasked differently from gobwas")
		}
	})
}
