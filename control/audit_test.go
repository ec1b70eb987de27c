package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
	unauthBody := []byte(`{"action":"force_disconnect_user","data":{"userId":"bob","secret":"s3"}}`)
	f.do("POST", PathAdmin, "", unauthBody)
	// Refused: unknown action (400).
	f.do("POST", PathAdmin, tok, []byte(`{"action":"drop_tables"}`))
	// Refused: not JSON (its content is not kept).
	f.do("POST", PathAdmin, tok, []byte(`{"action":"x", password=hunter2`))

	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	// The refusal before authentication is kept apart.
	refused, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 10, Unauthenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 {
		t.Fatalf("%d refused records, want 1", len(refused))
	}
	// Newest first.
	notJSON, unknown, invalid, ok := recs[0], recs[1], recs[2], recs[3]
	unauth := refused[0]
	for _, r := range append(recs, unauth) {
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
	// Nothing of an unauthenticated body is parsed: its size only.
	if unauth.Actor != "" || unauth.Action != "" || unauth.Status != 401 || unauth.Reason != "no token" || string(unauth.Data) != fmt.Sprintf(`{"bodyBytes":%d}`, len(unauthBody)) {
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
	audits, refusals := 0, 0
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] == "admin authentication refused" {
			refusals++
			if line["reason"] != "no token" || line["refusedSeq"] != 1.0 || line["status"] != 401.0 {
				t.Errorf("refusal line: %s", sc.Text())
			}
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
	// One line per request, refusals included.
	if audits != 4 || refusals != 1 {
		t.Errorf("%d audit log lines and %d refusal lines, want 4 and 1", audits, refusals)
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

// Retention: the audit log keeps at most AuditMaxEntries records and none
// older than AuditMaxAge.
func TestAuditRetention(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuditMaxEntries = 5 })
	for range 12 {
		f.mustAdmin(ActionGetAlertConfigs, nil)
	}
	n, _, err := f.ctl.store.auditCount(&f.ctl.store.audit)
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
	left, _ := st.auditList(false, 100, time.Time{}, 0, nil)
	if len(left) != 1 || left[0].Action != "new" {
		t.Fatalf("after age pruning: %+v", left)
	}

	// The byte budget: records of ~1 KiB under a 10 KiB budget keep about
	// ten, and the count of bytes stays true across a reopen.
	dir := t.TempDir()
	st2, err := openStore(dir, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st2.audit.maxBytes = 10 << 10
	for i := range 100 {
		rec := &AuditRecord{Time: time.Now(), Action: "a", Message: strings.Repeat("m", 900) + strconv.Itoa(i)}
		if err := st2.appendAudit(rec); err != nil {
			t.Fatal(err)
		}
	}
	n, b, err := st2.auditCount(&st2.audit)
	if err != nil || n < 8 || n > 10 || b > 10<<10 {
		t.Fatalf("under a 10 KiB budget: %d records, %d bytes (%v)", n, b, err)
	}
	_ = st2.close()
	// A store written before the byte counts gets them counted at open.
	db, err := bolt.Open(filepath.Join(dir, StoreFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketState).Delete([]byte("audit_bytes")) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	st2, err = openStore(dir, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.close()
	if n2, b2, _ := st2.auditCount(&st2.audit); n2 != n || b2 != b {
		t.Fatalf("after a reopen: %d records, %d bytes; want %d, %d", n2, b2, n, b)
	}
}

// A real flood of refused admin POSTs at the control server over loopback:
// thousands from hundreds of addresses, bodies small and large, while
// operators work. Their records survive, the refusals stay in their own
// capped bucket with the body's size only, a locked-out address is
// recorded no more, the store file stays small and the log lines are
// bounded by the rate.
func TestAuditFloodOfRefusals(t *testing.T) {
	const (
		addrs      = 200
		perAddr    = 20 // 10 recorded (AuthFailures), 10 answered 429 quietly
		workers    = 16
		refusedCap = 500
		logRate    = 10
		// fileBound is what the store file may reach: bbolt's pages for at
		// most refusedCap small records and the operators' few, with room
		// for its copy-on-write. Before the fix the same flood grew it to
		// 50 MB (every refusal stored with its data, in the operators' bucket).
		fileBound = 2 << 20
	)
	f := newFixture(t, func(c *Config) {
		c.TrustedProxies = mustPrefixes(t, "127.0.0.0/8")
		c.AuthFailureWindow = time.Hour
		c.AuditRefusedEntries = refusedCap
		c.RefusalLogRate = logRate
	})
	f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "kim", "limit": 7, "windowMs": 2000})
	f.mustAdmin(ActionGetAlertConfigs, nil)

	// 6 KB of data an old server kept (under its 16 KiB per record), with
	// a password in it; under preAuthBodyBytes, so keep-alive holds.
	fields := []string{`"enabled":true`, `"password":"hunter2"`}
	for i := range 12 {
		fields = append(fields, fmt.Sprintf(`"note%d":"%s"`, i, strings.Repeat("n", 480)))
	}
	small := []byte(`{"action":"set_maintenance_mode","data":{` + strings.Join(fields, ",") + `}}`)
	large := arrayOfEmptyObjects(16 << 10)
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	addr := strings.TrimPrefix(f.base, "http://")

	jobs := make(chan int)
	statuses := make([]atomic.Int64, 600)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ip := fmt.Sprintf("10.1.%d.%d", i%addrs/250, i%addrs%250+1)
				if i%50 == 0 {
					// 16 KiB without a token: answered from the head, body unread.
					statuses[postRaw(addr, PathAdmin, "", large, "X-Forwarded-For: "+ip)].Add(1)
					continue
				}
				req, _ := http.NewRequest("POST", f.base+PathAdmin, bytes.NewReader(small))
				req.Header.Set("X-Forwarded-For", ip)
				if i%3 == 0 {
					req.Header.Set("Authorization", "Bearer "+clientToken(t, "mallory"))
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode].Add(1)
			}
		}()
	}
	for i := range addrs * perAddr {
		jobs <- i
		if i == addrs*perAddr/2 {
			// An operator in the middle of the flood.
			f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "lee", "limit": 9, "windowMs": 1000})
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d requests in %s: %d 401, %d 429, %d without an answer (16 KiB bodies, connection closed unread)",
		addrs*perAddr, elapsed.Round(time.Millisecond), statuses[401].Load(), statuses[429].Load(), statuses[0].Load())
	if statuses[401].Load() < addrs*9 || statuses[429].Load() < addrs*9 || statuses[200].Load() != 0 {
		t.Fatalf("statuses: 401 %d, 429 %d, 200 %d", statuses[401].Load(), statuses[429].Load(), statuses[200].Load())
	}

	// One more address floods alone: recorded until it is locked out, then
	// not at all.
	for range 300 {
		statuses[postRaw(addr, PathAdmin, "", small, "X-Forwarded-For: 10.9.9.9")].Add(1)
	}

	// The operators' records are all there, and nothing else.
	f.mustAdmin(ActionGetAlertConfigs, nil)
	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[3].Seq != 1 {
		t.Fatalf("%d operators' records, want 4 from seq 1: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Actor != "alice" || r.Result != ResultOK {
			t.Fatalf("operators' record %+v", r)
		}
	}
	// The refusals: at most the cap, the body's size only, the last address
	// recorded AuthFailures times, the last of them marked.
	n, b, err := f.ctl.store.auditCount(&f.ctl.store.refused)
	if err != nil || n != refusedCap || b > refusedCap*maxRefusedRecordBytes {
		t.Fatalf("refused bucket: %d records, %d bytes (%v); want %d records", n, b, err, refusedCap)
	}
	refused, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000, Unauthenticated: true})
	var last []AuditRecord
	for _, r := range refused {
		if !strings.HasPrefix(string(r.Data), `{"bodyBytes":`) || strings.Contains(string(r.Data), "hunter2") {
			t.Fatalf("a refused record keeps more than the body's size: %s", r.Data)
		}
		if r.SourceIP == "10.9.9.9" {
			last = append(last, r)
		}
	}
	if len(last) != DefaultAuthFailures || !last[0].LockedOut || last[1].LockedOut || last[0].Status != 401 {
		t.Fatalf("the lone flooder has %d records (want %d, the newest marked lockedOut): %+v", len(last), DefaultAuthFailures, last[:min(2, len(last))])
	}

	// The store file.
	fi, err := os.Stat(filepath.Join(f.dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store file %d bytes (bound %d); refused bucket %d records, %d bytes of JSON", fi.Size(), fileBound, n, b)
	if fi.Size() > fileBound {
		t.Fatalf("store file %d bytes, over %d", fi.Size(), fileBound)
	}

	// The log: one line per logged refusal, no more than the rate allows
	// (a burst of logRate, then logRate a second), the rest counted.
	lines, unlogged := 0, 0.0
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "admin authentication refused" {
			continue
		}
		lines++
		u, _ := line["unlogged"].(float64)
		unlogged += u
	}
	bound := logRate + int(time.Since(start).Seconds()*logRate) + 1
	t.Logf("%d refusal lines (bound %d), %.0f refusals counted in them as not logged", lines, bound, unlogged)
	if lines > bound || lines == 0 {
		t.Fatalf("%d refusal lines, want 1 to %d", lines, bound)
	}
	if total := addrs*perAddr + 300; lines+int(unlogged) > total || lines+int(unlogged) < total/2 {
		t.Fatalf("%d lines + %.0f unlogged for %d refusals", lines, unlogged, total)
	}
}
