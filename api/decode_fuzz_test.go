package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fuzzRequest has the shapes REST requests use.
type fuzzRequest struct {
	Name    string           `json:"name"`
	Amount  int64            `json:"amount"`
	Pass    *string          `json:"password"`
	IDs     []int64          `json:"member_ids"`
	Rooms   map[string]int64 `json:"rooms"`
	Nested  *fuzzNested      `json:"nested"`
	Ignored string           `json:"-"`
}

type fuzzNested struct {
	Body string `json:"body"`
	Seq  int64  `json:"seq"`
}

// FuzzDecodeBody checks the REST decoder on any body: it never panics,
// refuses with a 400 in the one error shape, and what it accepts means the
// same to encoding/json, holds no key twice in any object, and names every
// struct field exactly.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","amount":5}`,
		`{"Amount":5}`,
		`{"amount":1,"amount":100000000}`,
		`{"nested":{"seq":1,"seq":2}}`,
		`{"rooms":{"1":2,"1":3}}`,
		`{"\u212amount":1}`,
		`{"password":null,"member_ids":[1,2,3]}`,
		`{"nested":{"Body":"x"}}`,
		`{"name":"x"}{"name":"y"}`,
		`[]`, `null`, ``, `{`, `{"unknown":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got fuzzRequest
		err := DecodeBody(body, &got)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Message == "" {
				t.Fatalf("error %#v is not a 400 in the one shape", err)
			}
			return
		}
		var plain fuzzRequest
		if err := json.Unmarshal(body, &plain); err != nil || !reflect.DeepEqual(got, plain) {
			t.Fatalf("accepted %q as %+v but encoding/json reads %+v (%v)", body, got, plain, err)
		}
		if key, ok := repeatedOrFolded(body); ok {
			t.Fatalf("accepted %q, whose key %q is repeated or in the wrong case", body, key)
		}
	})
}

// repeatedOrFolded finds, independently of the decoder, a key given twice
// in one object or a top-level key that names a field only by case.
func repeatedOrFolded(body []byte) (string, bool) {
	fields := []string{"name", "amount", "password", "member_ids", "rooms", "nested"}
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
				continue
			case '[':
				stack = append(stack, nil)
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.expectKey {
				if top.keys[v] {
					return v, true
				}
				top.keys[v] = true
				for _, f := range fields {
					if v != f && strings.EqualFold(v, f) && len(stack) == 1 {
						return v, true
					}
				}
				top.expectKey = false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1] != nil {
			stack[len(stack)-1].expectKey = true
		}
	}
}
