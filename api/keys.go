package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Unmarshal decodes one JSON value into v like json.Unmarshal, but refuses
// what encoding/json accepts silently and another reader (a proxy, a
// client library) may read differently: a key given twice in one object,
// and a key that names a field only case-insensitively ("Amount" for
// "amount"). Keys that name no field are ignored, as json.Unmarshal does.
func Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	return checkKeys(data, reflect.TypeOf(v))
}

// checkKeys walks the document data against the type t it decoded into.
// data must already have decoded without error, so it is one valid JSON
// value: the walk reads it byte by byte instead of through
// json.Decoder's tokens, which cost an allocation or more each, several
// per WebSocket frame on the send path.
func checkKeys(data []byte, t reflect.Type) error {
	w := keyWalker{data: data}
	return w.value(t)
}

// keyWalker walks one valid JSON document; i is the next byte to read.
type keyWalker struct {
	data []byte
	i    int
}

func (w *keyWalker) space() {
	for w.i < len(w.data) {
		switch w.data[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// value walks the value at i, checking every object in it.
func (w *keyWalker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	w.space()
	if w.i >= len(w.data) {
		return fmt.Errorf("malformed JSON: unexpected end")
	}
	switch w.data[w.i] {
	case '{':
		w.i++
		return w.object(t)
	case '[':
		w.i++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for {
			w.space()
			if w.i < len(w.data) && w.data[w.i] == ']' {
				w.i++
				return nil
			}
			if err := w.value(elem); err != nil {
				return err
			}
			w.space()
			if w.i < len(w.data) && w.data[w.i] == ',' {
				w.i++
			}
		}
	case '"':
		w.str()
	default: // a number, true, false or null
		for w.i < len(w.data) {
			switch w.data[w.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return nil
			}
			w.i++
		}
	}
	return nil
}

// str skips the string at i (its opening quote) and returns its raw
// contents and whether they need decoding: an escape, or a byte past
// ASCII (encoding/json replaces invalid UTF-8), where the raw bytes may
// not be the key encoding/json sees.
func (w *keyWalker) str() (raw []byte, decode bool) {
	w.i++
	start := w.i
	for w.i < len(w.data) {
		switch c := w.data[w.i]; {
		case c == '\\':
			decode = true
			w.i += 2
			continue
		case c == '"':
			raw = w.data[start:w.i]
			w.i++
			return raw, decode
		case c >= 0x80:
			decode = true
		}
		w.i++
	}
	return w.data[start:], decode
}

// object walks the members of the object whose '{' was just read. Keys
// are compared as encoding/json decodes them.
func (w *keyWalker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	// seen holds the keys so far: a request or frame has a few, walked
	// through; a map of many (a sync's rooms) moves them to a set.
	var seen [][]byte
	var seenSet map[string]bool
	for {
		w.space()
		if w.i >= len(w.data) {
			return fmt.Errorf("malformed JSON: unexpected end")
		}
		if w.data[w.i] == '}' {
			w.i++
			return nil
		}
		if w.data[w.i] == ',' {
			w.i++
			w.space()
		}
		if w.i >= len(w.data) || w.data[w.i] != '"' {
			return fmt.Errorf("malformed JSON: object key expected at offset %d", w.i)
		}
		qstart := w.i
		key, decode := w.str()
		if decode {
			var k string
			if err := json.Unmarshal(w.data[qstart:w.i], &k); err != nil {
				return fmt.Errorf("malformed JSON: %w", err)
			}
			key = []byte(k)
		}
		if seenSet != nil {
			if seenSet[string(key)] {
				return fmt.Errorf("duplicate field %q", key)
			}
			seenSet[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					return fmt.Errorf("duplicate field %q", key)
				}
			}
			seen = append(seen, key)
			if len(seen) > 16 {
				seenSet = make(map[string]bool, 2*len(seen))
				for _, k := range seen {
					seenSet[string(k)] = true
				}
			}
		}
		child := elem
		if fields != nil {
			ft, ok := fields[string(key)]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, string(key)) {
						return fmt.Errorf("unknown field %q (field names are case-sensitive: %q)", key, name)
					}
				}
			}
			child = ft
		}
		w.space()
		if w.i < len(w.data) && w.data[w.i] == ':' {
			w.i++
		}
		if err := w.value(child); err != nil {
			return err
		}
	}
}

// fieldCache holds fieldsOf's answers; request and frame types are few.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf maps a struct's JSON names to their types, as encoding/json
// names them (tag name, else the Go name; embedded structs promoted).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range fieldsOf(ft) {
					if _, ok := m[k]; !ok {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = ft
	}
	fieldCache.Store(t, m)
	return m
}
