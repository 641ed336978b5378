package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzCheckKeys holds checkKeys, which walks the bytes, to the walk over
// json.Decoder's tokens it replaced (tokenKeys below): on every document
// encoding/json decodes, both refuse the same ones with the same error.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","amount":5}`,
		`{"Amount":5}`,
		`{"amount":1,"amount":100000000}`,
		`{"nested":{"seq":1,"seq":2}}`,
		`{"rooms":{"1":2,"1":3}}`,
		`{"rooms":{"1":2,"2":3,"3":1,"4":1,"5":1,"6":1,"7":1,"8":1,"9":1,"10":1,"11":1,"12":1,"13":1,"14":1,"15":1,"16":1,"17":1,"1":1}}`,
		`{"\u212amount":1}`,
		`{"n\u0061me":"x","name":"y"}`,
		"{\"\xff\":1,\"\xfe\":2}",
		`{"password":null,"member_ids":[1,2,3]}`,
		`{"nested":{"Body":"x"}}`,
		` { "name" : "a\"}" , "nested" : { "body" : "{\"seq\":1}" } , "x" : [ {"a":1,"a":2} ] } `,
		`{"x":[[{"a":1}],{"b":{"c":1,"c":2}}]}`,
		`{"amount":-1.5e3,"x":true,"y":false,"z":null}`,
	} {
		f.Add([]byte(s))
	}
	typ := reflect.TypeOf(&fuzzRequest{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var v fuzzRequest
		if json.Unmarshal(body, &v) != nil {
			return
		}
		got, want := checkKeys(body, typ), tokenKeys(body, typ)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q: checkKeys says %v, the token walk %v", body, got, want)
		}
	})
}

// BenchmarkUnmarshalSend is the strict decoding of one WebSocket send
// frame, as the hub does it for every frame a client sends.
//
//	go test -run '^$' -bench UnmarshalSend -benchmem ./api
func BenchmarkUnmarshalSend(b *testing.B) {
	type inbound struct { // the hub's frame type, in short
		Type    string           `json:"type"`
		Room    int64            `json:"room"`
		CID     string           `json:"cid"`
		Body    string           `json:"body"`
		ReplyTo int64            `json:"reply_to"`
		Seq     int64            `json:"seq"`
		Rooms   map[string]int64 `json:"rooms"`
	}
	frame := []byte(`{"type":"send","room":1234,"cid":"lg-00042-000123","body":"` + strings.Repeat("x", 100) + `"}`)
	b.ReportAllocs()
	for range b.N {
		var in inbound
		if err := Unmarshal(frame, &in); err != nil {
			b.Fatal(err)
		}
	}
}

// tokenKeys is checkKeys as it was, over json.Decoder's tokens: the
// reference FuzzCheckKeys compares with.
func tokenKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return tokenWalk(dec, t)
}

func tokenWalk(dec *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	switch tok {
	case json.Delim('{'):
		return tokenObject(dec, t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := tokenWalk(dec, elem); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	return nil
}

func tokenObject(dec *json.Decoder, t reflect.Type) error {
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
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("malformed JSON: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("duplicate field %q", key)
		}
		seen[key] = true
		child := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return fmt.Errorf("unknown field %q (field names are case-sensitive: %q)", key, name)
					}
				}
			}
			child = ft
		}
		if err := tokenWalk(dec, child); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}
