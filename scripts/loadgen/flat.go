package main

import (
	"bytes"
	"encoding/json"
)

// decodeFrame decodes a server frame: flat ones by parseFlat, anything
// else by encoding/json.
func decodeFrame(p []byte) (frame, error) {
	var f frame
	if parseFlat(p, &f) {
		return f, nil
	}
	f = frame{}
	err := json.Unmarshal(p, &f)
	return f, err
}

// parseFlat reads a server frame that is one flat JSON object — every
// value an integer or a string without escapes, as the node writes acks,
// errors, pongs and syncs — into f, without encoding/json's reflection
// (at 10,000 msg/s past capacity the generator reads tens of thousands of
// acks and refusals a second). It reports false for anything else (nested
// values, escapes, other literals), which the caller decodes with
// encoding/json instead.
func parseFlat(p []byte, f *frame) bool {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return skipSpace(p, i+1) == len(p)
	}
	for {
		key, n, ok := flatString(p, i)
		if !ok {
			return false
		}
		i = skipSpace(p, n)
		if i >= len(p) || p[i] != ':' {
			return false
		}
		i = skipSpace(p, i+1)
		if i >= len(p) {
			return false
		}
		n, ok = f.set(key, p, i)
		if !ok {
			return false
		}
		i = skipSpace(p, n)
		if i >= len(p) {
			return false
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case '}':
			return skipSpace(p, i+1) == len(p)
		default:
			return false
		}
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// flatString reads the string starting at p[i] (a quote) and returns its
// contents and the index after it; false for escapes, control bytes and
// anything past ASCII (encoding/json would replace invalid UTF-8).
func flatString(p []byte, i int) ([]byte, int, bool) {
	if i >= len(p) || p[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(p); j++ {
		switch c := p[j]; {
		case c == '"':
			return p[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// flatInt reads a JSON integer (optionally negative, no fraction or
// exponent, within int64) starting at p[i].
func flatInt(p []byte, i int) (int64, int, bool) {
	neg := i < len(p) && p[i] == '-'
	if neg {
		i++
	}
	v, n := leadingInt(p[i:])
	if n == 0 || n >= 19 || (n > 1 && p[i] == '0') {
		return 0, 0, false
	}
	i += n
	if i < len(p) && (p[i] == '.' || p[i] == 'e' || p[i] == 'E') {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// set reads the value at p[i], a plain string or an integer, into the
// field key names and returns the index after it; false when it is
// neither, or not the kind that field holds (encoding/json would refuse
// the frame), or key names a field in other case.
func (f *frame) set(key, p []byte, i int) (int, bool) {
	str, num := f.field(key)
	if str == nil && num == nil && foldsToField(key) {
		return 0, false
	}
	if p[i] == '"' {
		v, end, ok := flatString(p, i)
		if !ok || num != nil {
			return 0, false
		}
		if str != nil {
			*str = string(v)
		}
		return end, true
	}
	v, end, ok := flatInt(p, i)
	if !ok || str != nil {
		return 0, false
	}
	if num != nil {
		*num = v
	}
	return end, true
}

// field is the string or the integer field key names exactly; both nil
// for any other key.
func (f *frame) field(key []byte) (*string, *int64) {
	switch string(key) {
	case "type":
		return &f.Type, nil
	case "body":
		return &f.Body, nil
	case "cid":
		return &f.CID, nil
	case "code":
		return &f.Code, nil
	case "message":
		return &f.Message, nil
	case "room":
		return nil, &f.Room
	case "seq":
		return nil, &f.Seq
	case "user":
		return nil, &f.User
	case "retry_after_ms":
		return nil, &f.RetryAfterMS
	case "from":
		return nil, &f.From
	case "to":
		return nil, &f.To
	}
	return nil, nil
}

var frameFields = [][]byte{
	[]byte("type"), []byte("body"), []byte("cid"), []byte("code"), []byte("message"),
	[]byte("room"), []byte("seq"), []byte("user"), []byte("retry_after_ms"), []byte("from"), []byte("to"),
}

// foldsToField reports whether key matches a frame field other than
// exactly: encoding/json matches keys without regard to case.
func foldsToField(key []byte) bool {
	for _, f := range frameFields {
		if bytes.EqualFold(key, f) {
			return true
		}
	}
	return false
}
