package control

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Maintenance, rate-limit overrides, alert rules and the audit log survive
// a restart; maintenance is back on before the engine serves its first
// client.
func TestStatePersistsAcrossRestart(t *testing.T) {
	f := newFixture(t)
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "db migration"})
	f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "kim", "limit": 7, "windowMs": 2000})
	f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "lee", "limit": 9, "windowMs": 1000})
	f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "lee", "limit": 0})
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "conns", "metric": "connections", "threshold": 100})
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "response_time", "threshold": 2500})
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "memory_usage", "delete": true})
	before, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 100})

	f.restart(false)
	// Before the engine serves: already in maintenance.
	if m := f.engine.Maintenance(); m == nil || m.Reason != "db migration" {
		t.Fatalf("maintenance after restart: %+v", m)
	}
	f.serveEngine()
	_, resp, err := dialRaw(f.wsAddr)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("a client was admitted after a restart in maintenance: %v", err)
	}
	h := f.do("GET", PathHealth, "", nil)
	if h.status != 503 || !strings.Contains(string(h.body), `"maintenance"`) {
		t.Fatalf("health after restart: %d %s", h.status, h.body)
	}
	st, err := f.ctl.AdminStatus()
	if err != nil || !st.Maintenance.Enabled || st.Maintenance.By != "alice" || st.Maintenance.Reason != "db migration" {
		t.Fatalf("maintenance status after restart: %+v %v", st.Maintenance, err)
	}
	rls := f.proto.RateLimits()
	if len(rls) != 1 || rls[0].UserID != "kim" || rls[0].Limit != 7 || rls[0].Window != 2*time.Second {
		t.Fatalf("rate limits after restart: %+v", rls)
	}
	alerts, _ := f.ctl.AlertConfigs()
	names := []string{}
	for _, a := range alerts {
		names = append(names, a.Name)
		if a.Name == "response_time" && a.Threshold != 2500 {
			t.Errorf("response_time threshold %v after restart", a.Threshold)
		}
	}
	if strings.Join(names, ",") != "conns,error_rate,event_loop_stalled,response_time" {
		t.Fatalf("alert rules after restart: %v (the deleted default must stay deleted)", names)
	}
	after, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 100})
	if string(mustJSON(t, after)) != string(mustJSON(t, before)) {
		t.Fatalf("audit log changed across the restart:\n%s\n%s", mustJSON(t, before), mustJSON(t, after))
	}

	// Off, restart again: it stays off.
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": false})
	f.restart(true)
	if f.engine.Maintenance() != nil || !f.engine.Ready() {
		t.Fatal("maintenance came back after being turned off")
	}
}

// A second process cannot open the same store: New fails at once instead
// of waiting or sharing it.
func TestStoreLocked(t *testing.T) {
	dir := t.TempDir()
	st, err := openStore(dir, 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	start := time.Now()
	if _, err := openStore(dir, 10, time.Hour); err == nil {
		t.Fatal("opened a store held by another handle")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("opening a locked store took too long")
	}
}

// Default alert rules are written on first start only.
func TestDefaultAlertsSeededOnce(t *testing.T) {
	dir := t.TempDir()
	st, err := openStore(dir, 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := st.alerts()
	if len(a) != 4 {
		t.Fatalf("%d default rules", len(a))
	}
	b, _ := json.Marshal(a)
	for _, want := range []string{`"metric":"error_rate","operator":"\u003e","threshold":0.1,"forMs":300000`,
		`"metric":"memory_usage","operator":"\u003e","threshold":0.9,"forMs":300000`,
		`"metric":"response_time","operator":"\u003e","threshold":5000,"forMs":300000`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no default rule %s in %s", want, b)
		}
	}
	err = st.db.Update(func(tx *bolt.Tx) error {
		for _, r := range a {
			if err := deleteAlert(tx, r.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.close()
	st, err = openStore(dir, 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if a, _ := st.alerts(); len(a) != 0 {
		t.Fatalf("deleted defaults came back: %+v", a)
	}
}

// A second server on the same data dir (two nodes on one host, or one
// started twice) is refused with an error naming the store and saying that
// another process holds it, after the lock timeout.
func TestStoreHeldByAnotherServer(t *testing.T) {
	dir := t.TempDir()
	st, err := openStore(dir, 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.db.Close()
	_, err = openStore(dir, 100, time.Hour)
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), filepath.Join(dir, StoreFile)) ||
		!strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: %v, want ErrStoreLocked naming %s", err, filepath.Join(dir, StoreFile))
	}
}

// A store written before levels existed: its rules carry "severity",
// which still loads as the level, and it gets the emergency default once.
func TestStoreFromBeforeLevels(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, StoreFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAudit, bucketAlerts, bucketRateLimits, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		old := `{"name":"conns","metric":"connections","operator":">","threshold":100,"forMs":60000,"severity":"critical","enabled":true,"updatedAt":"2026-10-01T00:00:00Z","updatedBy":"bob"}`
		if err := tx.Bucket(bucketAlerts).Put([]byte("conns"), []byte(old)); err != nil {
			return err
		}
		return tx.Bucket(bucketState).Put(keyAlertsSeeded, []byte("1"))
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(dir, 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := st.alerts()
	if len(a) != 2 || a[0].Name != "conns" || a[0].Level != "critical" || a[0].Threshold != 100 || a[1].Name != "event_loop_stalled" {
		t.Fatalf("rules after the upgrade: %+v", a)
	}
	_ = st.db.Update(func(tx *bolt.Tx) error { return deleteAlert(tx, "event_loop_stalled") })
	_ = st.close()
	st, err = openStore(dir, 10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if a, _ := st.alerts(); len(a) != 1 {
		t.Fatalf("the deleted emergency default came back: %+v", a)
	}
}
