package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Decode reads the JSON body into v. Unknown fields, wrong types, trailing
// data, an empty body, a field given twice and a field name in the wrong
// case are a 400 bad_request naming what was wrong.
func Decode(c *fiber.Ctx, v any) error { return DecodeBody(c.Body(), v) }

// DecodeBody is Decode for a body already read.
func DecodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return BadRequest("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest(describe(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("request body must hold exactly one JSON object")
	}
	// encoding/json keeps the last of two equal keys and matches names
	// case-insensitively; a proxy or WAF in front may read the first, or
	// only the exact name, and so see a different request.
	if err := checkKeys(body, reflect.TypeOf(v)); err != nil {
		return BadRequest(err.Error())
	}
	return nil
}

func describe(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "request body must be a JSON object"
		}
		return fmt.Sprintf("field %q must be of type %s", typ.Field, typ.Type.String())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of body"
	}
	// encoding/json reports unknown fields only as text.
	if msg, ok := strings.CutPrefix(err.Error(), "json: "); ok && strings.HasPrefix(msg, "unknown field") {
		return msg
	}
	return "malformed JSON: " + err.Error()
}

// ParamID reads a positive integer path parameter such as :id.
func ParamID(c *fiber.Ctx, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Params(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, BadRequest(name + " must be a positive integer")
	}
	return id, nil
}

// Limit reads ?limit= with a default and an upper bound.
func Limit(c *fiber.Ctx, def, max int) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, Validation(fmt.Sprintf("limit must be between 1 and %d", max))
	}
	return n, nil
}

// Cursor reads ?cursor=, an opaque position that is the last id seen;
// empty means from the start.
func Cursor(c *fiber.Ctx) (int64, error) {
	s := c.Query("cursor")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, Validation("cursor is not valid; pass back next_cursor unchanged")
	}
	return n, nil
}

// Page reads ?limit= (default def, at most max) and ?cursor= together, as
// every cursor-paged list does.
func Page(c *fiber.Ctx, def, max int) (limit int, cursor int64, err error) {
	if limit, err = Limit(c, def, max); err != nil {
		return 0, 0, err
	}
	cursor, err = Cursor(c)
	return limit, cursor, err
}
