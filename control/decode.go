package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Decoding of request data into typed structs, so that every failure names
// the field at fault (422) and unknown fields are refused rather than
// silently ignored (a typo such as "enable" for "enabled" must not pass).

// decodeObject decodes the JSON object raw into v (a pointer to a struct).
// prefix is the field path of raw ("data"); an absent or null raw decodes
// as {}.
func decodeObject(prefix string, raw json.RawMessage, v any) *Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		if prefix == "" {
			return badRequest("the body must be a JSON object")
		}
		return invalidField(prefix, "want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldError(prefix, err, v)
	}
	if dec.More() {
		return badRequest("trailing data after the JSON object")
	}
	return nil
}

// fieldError turns a decoding error into a 422 naming the field, or a 400
// for JSON that does not parse.
func fieldError(prefix string, err error, v any) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		f := join(prefix, withoutEmbedded(te.Field, v))
		if f == "" {
			return badRequest("the body must be a JSON object")
		}
		return invalidField(f, "want %s, got %s", kindOf(te.Type), te.Value)
	case errors.As(err, &se):
		if prefix == "" {
			return badRequest("the body is not valid JSON: %v", err)
		}
		return badRequest("%s is not valid JSON: %v", prefix, err)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, err := strconv.Unquote(name); err == nil {
			name = n
		}
		return invalidField(join(prefix, name), "unknown field; valid fields: %s", strings.Join(jsonFields(v), ", "))
	}
	if prefix == "" {
		prefix = "the body"
	}
	return badRequest("cannot decode %s: %v", prefix, err)
}

// withoutEmbedded removes from a decoder's field path the names of the
// structs v embeds (their fields are the object's own in JSON).
func withoutEmbedded(field string, v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return field
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Anonymous {
			field = strings.TrimPrefix(field, f.Name+".")
		}
	}
	return field
}

// join makes the field path prefix.name.
func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

// kindOf describes what a Go type takes in JSON.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return t.String()
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(reflect.New(f.Type).Interface())...)
			continue
		}
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// parseTime reads a time given as Unix milliseconds (a number) or RFC 3339
// (a string). Absent or null is the zero time.
func parseTime(field string, raw json.RawMessage) (time.Time, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, invalidField(field, "want RFC 3339 (2026-11-27T12:00:00Z) or Unix milliseconds, got %s", raw)
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < 0 {
		return time.Time{}, invalidField(field, "want Unix milliseconds or RFC 3339, got %s", raw)
	}
	return time.UnixMilli(ms), nil
}

// parseDuration reads a duration given as milliseconds (a number) or a Go
// duration string ("1m", "15m"). Absent or null is zero.
func parseDuration(field string, raw json.RawMessage) (time.Duration, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if d, err := time.ParseDuration(s); err == nil && d >= 0 {
				return d, nil
			}
		}
		return 0, invalidField(field, `want milliseconds or a duration such as "1m", got %s`, raw)
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < 0 {
		return 0, invalidField(field, "want non-negative milliseconds, got %s", raw)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// parseSocketID reads a socket id given as a number or a numeric string;
// absent or null is 0.
func parseSocketID(field string, raw json.RawMessage) (uint64, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			s = ""
		}
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, invalidField(field, "want a socket id (a positive integer), got %s", clip(string(raw), 64))
	}
	return id, nil
}

// checkReason checks a reason that goes into a close frame or a system
// message: at most 123 bytes, the close-frame limit. (encoding/json has
// already made it valid UTF-8.)
func checkReason(field, reason string) *Error {
	if len(reason) > 123 {
		return invalidField(field, "%d bytes, at most 123 (it goes into the close frame)", len(reason))
	}
	return nil
}
