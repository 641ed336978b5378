package hub

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

// MaxMessage is the largest message (after reassembling fragments) a
// client may send; larger ones close the connection with 1009.
const MaxMessage = 64 << 10

// maxHeader is the longest client frame header: 2 bytes, 8 of length, 4 of mask.
const maxHeader = 14

// closeError is a protocol violation that ends the connection with code.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string { return e.reason }

var errIncomplete = errors.New("hub: incomplete frame")

// parseFrame reads one client frame from buf. It returns the header, the
// unmasked payload (aliasing buf) and the bytes consumed, or errIncomplete
// when buf does not yet hold the whole frame. Payload lengths are checked
// before the payload arrives, so an oversized frame is refused without
// buffering it.
func parseFrame(buf []byte) (ws.Header, []byte, int, error) {
	var h ws.Header
	if len(buf) < 2 {
		return h, nil, 0, errIncomplete
	}
	h.Fin = buf[0]&0x80 != 0
	h.Rsv = (buf[0] >> 4) & 0x7
	h.OpCode = ws.OpCode(buf[0] & 0x0f)
	h.Masked = buf[1]&0x80 != 0
	n := 2
	switch l := buf[1] & 0x7f; l {
	case 126:
		if len(buf) < 4 {
			return h, nil, 0, errIncomplete
		}
		h.Length = int64(binary.BigEndian.Uint16(buf[2:4]))
		n = 4
	case 127:
		if len(buf) < 10 {
			return h, nil, 0, errIncomplete
		}
		h.Length = int64(binary.BigEndian.Uint64(buf[2:10]))
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Rsv != 0 {
		return h, nil, 0, &closeError{ws.StatusProtocolError, "reserved bits set without an extension"}
	}
	if !h.Masked {
		return h, nil, 0, &closeError{ws.StatusProtocolError, "client frames must be masked"}
	}
	if h.OpCode.IsControl() && (h.Length > 125 || !h.Fin) {
		return h, nil, 0, &closeError{ws.StatusProtocolError, "control frames must be short and unfragmented"}
	}
	if h.Length < 0 || h.Length > MaxMessage {
		return h, nil, 0, &closeError{ws.StatusMessageTooBig, "message larger than 64 KiB"}
	}
	if len(buf) < n+4 {
		return h, nil, 0, errIncomplete
	}
	copy(h.Mask[:], buf[n:n+4])
	n += 4
	end := n + int(h.Length)
	if len(buf) < end {
		return h, nil, 0, errIncomplete
	}
	payload := buf[n:end]
	ws.Cipher(payload, h.Mask, 0)
	return h, payload, end, nil
}

// textFrame frames payload as one unmasked server text frame. The result
// is written unchanged to every recipient on this node.
func textFrame[T string | []byte](payload T) []byte {
	return compile(ws.OpText, payload)
}

// compile frames payload as one final unmasked server frame in a single
// allocation: every delivery on every node builds one, so it skips
// gobwas's buffer and, for a payload read from pub/sub as a string, a
// copy to bytes first.
func compile[T string | []byte](op ws.OpCode, payload T) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2+n)
		b[1] = byte(n)
	case n <= 0xffff:
		b = make([]byte, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | byte(op) // FIN
	copy(b[len(b)-n:], payload)
	return b
}

// framePayload is the payload of a frame compile built.
func framePayload(frame []byte) []byte {
	switch frame[1] {
	case 126:
		return frame[4:]
	case 127:
		return frame[10:]
	}
	return frame[2:]
}

// closeFrame is a server close frame carrying code.
func closeFrame(code ws.StatusCode, reason string) []byte {
	return compile(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// pingFrame is compiled once; keepalive sends it to every connection.
var pingFrame = compile(ws.OpPing, []byte(nil))
