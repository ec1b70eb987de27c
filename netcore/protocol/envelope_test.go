package protocol

import (
	"encoding/json"
	"testing"
)

func TestParseEnvelope(t *testing.T) {
	cases := []struct {
		in                  string
		err                 bool
		typ, id, room, data string
	}{
		{in: `{"type":"echo","id":1,"data":{"a":[1,2,{"b":null}]}}`, typ: "echo", id: "1", data: `{"a":[1,2,{"b":null}]}`},
		{in: ` { "type" : "ping" , "id" : "abc" } `, typ: "ping", id: `"abc"`},
		{in: `{"type":"join","id":-1.5e3,"room":"lobby"}`, typ: "join", id: "-1.5e3", room: "lobby"},
		{in: `{"type":"publish","room":"r","data":"x\"y\u00e9"}`, typ: "publish", room: "r", data: `"x\"y\u00e9"`},
		{in: `{}`},
		{in: `{"type":"echo","extra":[true,false,null,0.5]}`, typ: "echo"},
		{in: `[1]`, err: true},
		{in: `{"type":"echo"`, err: true},
		{in: `{"type":"echo",}`, err: true},
		{in: `{"type":echo}`, err: true},
		{in: `{"type":1}`, err: true},
		{in: `{"id":{}}`, err: true},
		{in: `{"id":true}`, err: true},
		{in: `{"type":"e\u0063ho"}`, err: true},
		{in: `{"a":01}`, err: true},
		{in: `{"a":1.}`, err: true},
		{in: `{"a":"\x"}`, err: true},
		{in: "{\"a\":\"\x01\"}", err: true},
		{in: `{"a":1} x`, err: true},
		{in: `{"a":[` + string(make([]byte, 0)) + `]}`},
	}
	for _, tc := range cases {
		var e envelope
		err := parseEnvelope([]byte(tc.in), &e)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if string(e.typ) != tc.typ || string(e.id) != tc.id || string(e.room) != tc.room || string(e.data) != tc.data {
			t.Errorf("%s: got type %q id %q room %q data %q", tc.in, e.typ, e.id, e.room, e.data)
		}
	}
}

func TestParseEnvelopeDepthLimit(t *testing.T) {
	deep := `{"data":`
	for i := 0; i < 100; i++ {
		deep += "["
	}
	for i := 0; i < 100; i++ {
		deep += "]"
	}
	deep += "}"
	var e envelope
	if err := parseEnvelope([]byte(deep), &e); err != errTooDeep {
		t.Fatalf("100 levels: %v, want errTooDeep", err)
	}
}

// FuzzEnvelope: the scanner accepts exactly what encoding/json accepts as
// an object (for inputs without escaped field names), and never panics.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"echo","id":1,"data":{"a":[1,2]}}`))
	f.Add([]byte(`{"type":"publish","room":"r","data":"x"}`))
	f.Add([]byte(`{"id":"7","data":[1e10,-0.5,true,null]}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		var e envelope
		err := parseEnvelope(p, &e)
		var v map[string]json.RawMessage
		jerr := json.Unmarshal(p, &v)
		if err == nil && jerr != nil {
			t.Fatalf("accepted %q, encoding/json says %v", p, jerr)
		}
		if jerr == nil && err == errBadJSON {
			t.Fatalf("rejected valid JSON %q", p)
		}
	})
}
