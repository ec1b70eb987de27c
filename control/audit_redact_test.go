package control

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Free content (a broadcast's message): values under secret-named keys and
// strings holding credentials are redacted, long strings and arrays
// shortened, and data that is not one JSON value is reduced to its size.
func TestRedactFreeContent(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	redact := auditRedactor{}.free
	for _, tc := range []struct{ in, want string }{
		{``, ``},
		{`null`, ``},
		{`{"userId":"bob","reason":"spam"}`, `{"reason":"spam","userId":"bob"}`},
		{`{"Authorization":"x","ACCESS_TOKEN":"y","client-secret":"z","apiKey":1,"key":"k","routing_key":"r"}`,
			`{"ACCESS_TOKEN":"[REDACTED]","Authorization":"[REDACTED]","apiKey":"[REDACTED]","client-secret":"[REDACTED]","key":"[REDACTED]","routing_key":"[REDACTED]"}`},
		{`{"message":"` + jwt + `"}`, `{"message":"[REDACTED]"}`},
		{`["a", "token: ` + jwt + `"]`, `["a","[REDACTED]"]`},
		{`{"credentials":{"user":"u","pass":"p"}}`, `{"credentials":"[REDACTED]"}`},
		{`{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{`not json`, `{"invalidJsonBytes":8}`},
		{`{"a":1} {"b":2}`, `{"invalidJsonBytes":15}`},
		// The review's keys (issue 12, item 13).
		{`{"access_key":"AKIA","pass":"p","pwd":"p","session":"s","dsn":"d","authHeader":"h","note":"fine"}`,
			`{"access_key":"[REDACTED]","authHeader":"[REDACTED]","dsn":"[REDACTED]","note":"fine","pass":"[REDACTED]","pwd":"[REDACTED]","session":"[REDACTED]"}`},
		// Credentials in values, whatever the key.
		{`{"a":"Basic YWxpY2U6cGFzc3dvcmQ=","b":"Bearer abc","c":"postgres://app:hunter2@db/x","d":"/login?user=a&password=hunter2","e":"https://example.com/ok"}`,
			`{"a":"[REDACTED]","b":"[REDACTED]","c":"[REDACTED]","d":"[REDACTED]","e":"https://example.com/ok"}`},
	} {
		if got := string(redact([]byte(tc.in))); got != tc.want {
			t.Errorf("free(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	big := `[` + strings.Repeat(`"`+strings.Repeat("x", 400)+`",`, 99) + `"x"]`
	if got := string(redact([]byte(big))); !strings.HasPrefix(got, `{"omittedBytes":`) {
		t.Errorf("40 KB of data kept: %d bytes", len(got))
	}
	if got := string(redact([]byte(`[` + strings.Repeat(`{},`, 30000) + `{}]`))); got != `{"omittedBytes":90004}` {
		t.Errorf("90 KB of data decoded: %s", got)
	}
	long := make([]any, 150)
	for i := range long {
		long[i] = i
	}
	b, _ := json.Marshal(long)
	var out []any
	_ = json.Unmarshal(redact(b), &out)
	if len(out) != maxAuditArray+1 || out[maxAuditArray] != "[50 more]" {
		t.Errorf("long array: %d items, last %v", len(out), out[len(out)-1])
	}
}

// An action's data keeps the fields its request type declares, at any
// depth; every other field is kept by name with its value redacted, and a
// credential in a declared field redacts the whole value.
func TestRedactByActionRequest(t *testing.T) {
	r := newAuditRedactor([]byte(testAdminSecret), []byte(testClientSecret))
	for _, tc := range []struct{ action, in, want string }{
		{ActionSetMaintenanceMode,
			`{"enabled":true,"reason":"upgrade","drain":false,"access_key":"AKIA","pass":"p","pwd":"p","session":"s","dsn":"postgres://db","authHeader":"x","comment":"not a field"}`,
			`{"access_key":"[REDACTED]","authHeader":"[REDACTED]","comment":"[REDACTED]","drain":false,"dsn":"[REDACTED]","enabled":true,"pass":"[REDACTED]","pwd":"[REDACTED]","reason":"upgrade","session":"[REDACTED]"}`},
		{ActionForceDisconnectUser, `{"userId":"bob","reason":"Basic YWxpY2U6cGFzc3dvcmQ="}`, `{"reason":"[REDACTED]","userId":"bob"}`},
		{ActionForceDisconnectUser, `{"userId":"bob","reason":"see https://ops:hunter2@wiki.example.com/x"}`, `{"reason":"[REDACTED]","userId":"bob"}`},
		{ActionForceDisconnectUser, `{"userId":"bob","reason":"GET /x?user=a&password=hunter2"}`, `{"reason":"[REDACTED]","userId":"bob"}`},
		{ActionForceDisconnectUser, `{"userId":"bob","reason":"the key is ` + testClientSecret + `"}`, `{"reason":"[REDACTED]","userId":"bob"}`},
		{ActionForceDisconnectSocket, `{"socketId":"17","reason":{"nested":"object"}}`, `{"reason":"[REDACTED]","socketId":"17"}`},
		{ActionSetRateLimit, `{"userId":"kim","limit":5,"windowMs":1000,"pwd":"x"}`, `{"limit":5,"pwd":"[REDACTED]","userId":"kim","windowMs":1000}`},
		// A broadcast's message is free content: its own secret-named keys go.
		{ActionExecuteCommand, `{"command":"broadcast","room":"ops","message":{"text":"hi","session":"abc","dsn":"x"},"token":"t"}`,
			`{"command":"broadcast","message":{"dsn":"[REDACTED]","session":"[REDACTED]","text":"hi"},"room":"ops","token":"[REDACTED]"}`},
		// Nested request types: the detailed health view's parts.
		{ActionHealthDetails, `{"connections":{"userId":"bob","limit":5,"session":"s"},"history":{"from":"2026-01-01T00:00:00Z","pass":"p"},"commands":{"limit":3},"extra":1}`,
			`{"commands":{"limit":3},"connections":{"limit":5,"session":"[REDACTED]","userId":"bob"},"extra":"[REDACTED]","history":{"from":"2026-01-01T00:00:00Z","pass":"[REDACTED]"}}`},
		{ActionConfigureAlert, `{"name":"conns","metric":"connections","threshold":100,"description":"page ops","webhook":"https://hooks.example/T/B/x"}`,
			`{"description":"page ops","metric":"connections","name":"conns","threshold":100,"webhook":"[REDACTED]"}`},
		// Unknown action: nothing is declared, every value goes.
		{"drop_tables", `{"table":"users","force":true}`, `{"force":"[REDACTED]","table":"[REDACTED]"}`},
		{ActionGetAlertConfigs, `{"x":1}`, `{"x":"[REDACTED]"}`},
		{ActionSetMaintenanceMode, `["not","an","object"]`, `"[REDACTED]"`},
	} {
		if got := string(r.data(tc.action, []byte(tc.in))); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.action, tc.in, got, tc.want)
		}
	}
	// A body that did not decode: the envelope, its data by the action.
	got := string(r.envelope(ActionSetMaintenanceMode, []byte(`{"action":"set_maintenance_mode","data":{"enabled":"yes","pwd":"p"},"pass":"x"}`)))
	if want := `{"action":"set_maintenance_mode","data":{"enabled":"yes","pwd":"[REDACTED]"},"pass":"[REDACTED]"}`; got != want {
		t.Errorf("envelope:\n got %s\nwant %s", got, want)
	}
}

// Every action declares the type its data decodes into, so the audit log
// has its allowlist; a new action without one keeps no value.
func TestEveryActionDeclaresItsRequest(t *testing.T) {
	// Audited records that are not admin commands: a detailed health
	// check and a remediation the alerts engine ran.
	internal := []string{ActionHealthDetails, ActionAlertRemediation}
	for _, a := range append(Actions(), internal...) {
		typ, ok := actionRequests[a]
		if !ok {
			t.Errorf("action %s has no request type in actionRequests", a)
			continue
		}
		sh := shapeOfAction(a)
		var names []string
		for n := range sh.fields {
			names = append(names, n)
		}
		slices.Sort(names)
		want := jsonFields(reflect.New(typ).Interface())
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s: allowlist %v, fields %v", a, names, want)
		}
	}
	for name := range actionRequests {
		if !slices.Contains(internal, name) && !slices.Contains(Actions(), name) {
			t.Errorf("actionRequests names %s, which is not an action", name)
		}
	}
}

// Through the server: what an operator sends is recorded by the allowlist.
func TestAuditRecordsByAllowlist(t *testing.T) {
	f := newFixture(t)
	f.do("POST", PathAdmin, f.token(), []byte(`{"action":"force_disconnect_user","data":{"userId":"bob","reason":"Basic YWxpY2U6cGFzc3dvcmQ=","access_key":"AKIA","dsn":"postgres://u:p@db/x"}}`))
	f.mustAdmin(ActionExecuteCommand, map[string]any{"command": "broadcast", "message": map[string]any{"text": "hi", "authHeader": "Bearer x", "pwd": "p"}})
	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 2})
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records (%v)", len(recs), err)
	}
	if got, want := string(recs[1].Data), `{"access_key":"[REDACTED]","dsn":"[REDACTED]","reason":"[REDACTED]","userId":"bob"}`; got != want || recs[1].Status != 422 {
		t.Errorf("422 record %d: %s, want %s", recs[1].Status, got, want)
	}
	if got, want := string(recs[0].Data), `{"command":"broadcast","message":{"authHeader":"[REDACTED]","pwd":"[REDACTED]","text":"hi"}}`; got != want {
		t.Errorf("broadcast record: %s, want %s", got, want)
	}
	for _, leak := range []string{"AKIA", "YWxpY2U6cGFzc3dvcmQ=", "u:p@db"} {
		if strings.Contains(f.logs.String(), leak) {
			t.Errorf("the log holds %q", leak)
		}
	}
}
