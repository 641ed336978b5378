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
		if p[i] == '"' {
			s, n, ok := flatString(p, i)
			if !ok {
				return false
			}
			if !f.setString(key, s) {
				return false
			}
			i = n
		} else {
			v, n, ok := flatInt(p, i)
			if !ok {
				return false
			}
			if !f.setInt(key, v) {
				return false
			}
			i = n
		}
		i = skipSpace(p, i)
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

// setString sets the string field key names, if any; false when key
// names an integer field (encoding/json would refuse the frame).
func (f *frame) setString(key, v []byte) bool {
	switch string(key) {
	case "type":
		f.Type = string(v)
	case "body":
		f.Body = string(v)
	case "cid":
		f.CID = string(v)
	case "code":
		f.Code = string(v)
	case "message":
		f.Message = string(v)
	case "room", "seq", "user", "retry_after_ms", "from", "to":
		return false
	default:
		return !foldsToField(key)
	}
	return true
}

// setInt sets the integer field key names, if any; false when key names
// a string field.
func (f *frame) setInt(key []byte, v int64) bool {
	switch string(key) {
	case "room":
		f.Room = v
	case "seq":
		f.Seq = v
	case "user":
		f.User = v
	case "retry_after_ms":
		f.RetryAfterMS = v
	case "from":
		f.From = v
	case "to":
		f.To = v
	case "type", "body", "cid", "code", "message":
		return false
	default:
		return !foldsToField(key)
	}
	return true
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
