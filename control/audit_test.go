package control

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Every admin POST, allowed or refused, is in the audit log with time,
// actor, source IP, action, redacted data and result, in the store and in
// the structured log; no token or secret appears in either.
func TestAuditLogContents(t *testing.T) {
	f := newFixture(t)
	tok := f.token()
	jwtLike := clientToken(t, "victim")
	before := time.Now()

	// Allowed, with secrets in the data that must be redacted.
	f.mustAdmin(ActionExecuteCommand, map[string]any{"command": "broadcast",
		"message": map[string]any{"password": "hunter2", "note": "Bearer " + jwtLike, "nested": map[string]any{"api_key": "k-123"}, "long": strings.Repeat("z", 2000)}})
	// Refused: validation (422) with a token in an unknown field.
	f.do("POST", PathAdmin, tok, []byte(`{"action":"set_maintenance_mode","data":{"enabled":true,"token":"`+jwtLike+`","webhookUrl":"https://hooks.example/T/B/secret"}}`))
	// Refused: authentication (401), by an unknown actor.
	f.do("POST", PathAdmin, "", []byte(`{"action":"force_disconnect_user","data":{"userId":"bob","secret":"s3"}}`))
	// Refused: unknown action (400).
	f.do("POST", PathAdmin, tok, []byte(`{"action":"drop_tables"}`))
	// Refused: not JSON (its content is not kept).
	f.do("POST", PathAdmin, tok, []byte(`{"action":"x", password=hunter2`))

	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	// Newest first.
	notJSON, unknown, unauth, invalid, ok := recs[0], recs[1], recs[2], recs[3], recs[4]
	for _, r := range recs {
		if r.Time.Before(before.Add(-time.Second)) || r.SourceIP != "127.0.0.1" || r.Seq == 0 {
			t.Errorf("record %+v: time, source IP or seq wrong", r)
		}
	}
	if ok.Actor != "alice" || ok.Action != ActionExecuteCommand || ok.Result != ResultOK || ok.Status != 200 {
		t.Errorf("allowed: %+v", ok)
	}
	var data struct {
		Command string
		Message map[string]any
	}
	if err := json.Unmarshal(ok.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Command != "broadcast" || data.Message["password"] != redacted || data.Message["note"] != redacted ||
		data.Message["nested"].(map[string]any)["api_key"] != redacted || len(data.Message["long"].(string)) > 600 {
		t.Errorf("allowed data not redacted: %s", ok.Data)
	}
	if invalid.Actor != "alice" || invalid.Action != ActionSetMaintenanceMode || invalid.Result != ResultRefused || invalid.Status != 422 || invalid.Code != CodeInvalidField {
		t.Errorf("422: %+v", invalid)
	}
	if !strings.Contains(string(invalid.Data), `"token":"[REDACTED]"`) || !strings.Contains(string(invalid.Data), `"webhookUrl":"[REDACTED]"`) {
		t.Errorf("422 data not redacted: %s", invalid.Data)
	}
	if unauth.Actor != "" || unauth.Action != ActionForceDisconnectUser || unauth.Status != 401 || !strings.Contains(string(unauth.Data), `"secret":"[REDACTED]"`) {
		t.Errorf("401: %+v %s", unauth, unauth.Data)
	}
	if unknown.Action != "drop_tables" || unknown.Status != 400 || unknown.Code != CodeUnknownAction {
		t.Errorf("unknown action: %+v", unknown)
	}
	if notJSON.Status != 400 || string(notJSON.Data) != `{"invalidJsonBytes":31}` {
		t.Errorf("not JSON: %+v %s", notJSON, notJSON.Data)
	}

	// The same in the structured log, as JSON lines, and nothing secret.
	logs := f.logs.String()
	for _, secret := range []string{tok, jwtLike, testAdminSecret, testClientSecret, "hunter2", "k-123", "s3\"", "hooks.example"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if strings.Contains(string(mustJSON(t, recs)), tok) {
		t.Error("the audit records contain the admin token")
	}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	audits := 0
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] != "admin audit" {
			continue
		}
		audits++
		for _, k := range []string{"time", "level", "seq", "actor", "sourceIp", "action", "result", "status"} {
			if _, ok := line[k]; !ok {
				t.Errorf("audit log line without %q: %s", k, sc.Text())
			}
		}
	}
	if audits != 5 {
		t.Errorf("%d audit log lines, want 5", audits)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedact(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
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
	} {
		if got := string(redact([]byte(tc.in))); got != tc.want {
			t.Errorf("redact(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	big := `[` + strings.Repeat(`"`+strings.Repeat("x", 400)+`",`, 99) + `"x"]`
	if got := string(redact([]byte(big))); !strings.HasPrefix(got, `{"omittedBytes":`) {
		t.Errorf("40 KB of data kept: %d bytes", len(got))
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

// Retention: the audit log keeps at most AuditMaxEntries records and none
// older than AuditMaxAge.
func TestAuditRetention(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuditMaxEntries = 5 })
	for range 12 {
		f.mustAdmin(ActionGetAlertConfigs, nil)
	}
	n, err := f.ctl.store.auditCount()
	if err != nil || n != 5 {
		t.Fatalf("count %d (%v), want 5", n, err)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 100})
	if len(recs) != 5 || recs[0].Seq != 12 || recs[4].Seq != 8 {
		t.Fatalf("kept seqs %d..%d (%d)", recs[len(recs)-1].Seq, recs[0].Seq, len(recs))
	}

	st, err := openStore(t.TempDir(), 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	now := time.Now()
	st.now = func() time.Time { return now }
	for i := range 4 {
		rec := &AuditRecord{Time: now.Add(-2 * time.Hour).Add(time.Duration(i) * time.Minute), Action: "old"}
		if err := st.appendAudit(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.appendAudit(&AuditRecord{Time: now, Action: "new"}); err != nil {
		t.Fatal(err)
	}
	left, _ := st.auditList(100, time.Time{}, 0, nil)
	if len(left) != 1 || left[0].Action != "new" {
		t.Fatalf("after age pruning: %+v", left)
	}
}
