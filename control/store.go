package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store is one bbolt file, DataDir/control.db. bbolt commits a
// transaction with a copy-on-write B+tree and an fsync of the data and then
// the meta page, so a crash (SIGKILL, power loss) leaves either the old or
// the new state, never a torn one. Every write that an admin command is
// acknowledged for has been committed before the reply is sent.
//
// Buckets:
//
//	audit       8-byte big-endian sequence -> AuditRecord (JSON); keys only
//	            ever grow and are pruned from the front, so the count is
//	            last-first+1
//	alerts      rule name -> AlertConfig (JSON)
//	ratelimits  "user:<id>" -> RateLimitOverride (JSON)
//	state       "maintenance" -> MaintenanceRecord (JSON),
//	            "agent" -> AgentStateRecord (JSON), what set_agent_state set,
//	            "alerts_seeded" -> "1" once the default rules were written
var (
	bucketAudit      = []byte("audit")
	bucketAlerts     = []byte("alerts")
	bucketRateLimits = []byte("ratelimits")
	bucketState      = []byte("state")

	keyMaintenance  = []byte("maintenance")
	keyAgentState   = []byte("agent")
	keyAlertsSeeded = []byte("alerts_seeded")
)

// StoreFile is the name of the store inside Config.DataDir.
const StoreFile = "control.db"

// auditPrunePerWrite bounds the records one write may prune, so a write
// after a long pause (or a lowered limit) does not stall; the rest goes
// with the next writes.
const auditPrunePerWrite = 256

type store struct {
	db         *bolt.DB
	maxEntries int
	maxAge     time.Duration
	now        func() time.Time
}

// storeLockTimeout is how long openStore waits for another process to let
// go of the store's file lock.
const storeLockTimeout = time.Second

// ErrStoreLocked is returned (wrapped, with the file's path) by New when
// another process holds the store: two nodes on one host, or one started
// twice, with the same data directory. Each node needs its own.
var ErrStoreLocked = errors.New("held by another process (another sockmon with the same data dir? each node needs its own)")

// openStore opens (or creates) the store under dir. It fails after
// storeLockTimeout with ErrStoreLocked if another process holds the file.
func openStore(dir string, maxEntries int, maxAge time.Duration) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control: data dir: %w", err)
	}
	path := filepath.Join(dir, StoreFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: storeLockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("control: store %s: %w", path, ErrStoreLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("control: open store %s: %w", path, err)
	}
	st := &store{db: db, maxEntries: maxEntries, maxAge: maxAge, now: time.Now}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAudit, bucketAlerts, bucketRateLimits, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// The seed's default alert rules, on first start only: a rule an
		// operator deleted stays deleted.
		state := tx.Bucket(bucketState)
		if state.Get(keyAlertsSeeded) != nil {
			return nil
		}
		for _, a := range defaultAlerts(st.now()) {
			if err := putJSON(tx.Bucket(bucketAlerts), []byte(a.Name), a); err != nil {
				return err
			}
		}
		return state.Put(keyAlertsSeeded, []byte("1"))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("control: initialise store %s: %w", path, err)
	}
	return st, nil
}

func (st *store) close() error { return st.db.Close() }

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// appendAudit commits rec on its own. Concurrent calls share one commit
// (bbolt's Batch), so a burst of refused requests costs one fsync per
// batch; each call returns after the commit that holds its record.
func (st *store) appendAudit(rec *AuditRecord) error {
	return st.db.Batch(func(tx *bolt.Tx) error { return st.putAudit(tx, rec) })
}

// putAudit adds rec in tx, numbering it, and prunes what retention
// allows.
func (st *store) putAudit(tx *bolt.Tx, rec *AuditRecord) error {
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec.Seq = seq
	if err := putJSON(b, seqKey(seq), rec); err != nil {
		return err
	}
	c := b.Cursor()
	cutoff := st.now().Add(-st.maxAge)
	for i := 0; i < auditPrunePerWrite; i++ {
		k, v := c.First()
		if k == nil || binary.BigEndian.Uint64(k) == seq {
			break
		}
		count := seq - binary.BigEndian.Uint64(k) + 1
		if count <= uint64(st.maxEntries) {
			var head struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(v, &head) == nil && !head.Time.Before(cutoff) {
				break
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// auditList returns up to limit records newest first, only those at or
// after since when since is not zero, only those with seq below before
// when before is not zero (paging backwards), and only those match keeps
// (nil keeps all).
func (st *store) auditList(limit int, since time.Time, before uint64, match func(*AuditRecord) bool) ([]AuditRecord, error) {
	var out []AuditRecord
	err := st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before > 0 {
			c.Seek(seqKey(before))
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !since.IsZero() && r.Time.Before(since) {
				break
			}
			if match != nil && !match(&r) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// auditCount returns the number of records kept.
func (st *store) auditCount() (int, error) {
	n := 0
	err := st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first != nil {
			n = int(binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1)
		}
		return nil
	})
	return n, err
}

// MaintenanceRecord is the persisted maintenance state.
type MaintenanceRecord struct {
	Enabled bool      `json:"enabled"`
	Reason  string    `json:"reason,omitempty"`
	Drain   bool      `json:"drain,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	By      string    `json:"by,omitempty"`
}

// maintenance returns the persisted maintenance state (zero when never
// set).
func (st *store) maintenance() (MaintenanceRecord, error) {
	var m MaintenanceRecord
	err := st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketState).Get(keyMaintenance); v != nil {
			return json.Unmarshal(v, &m)
		}
		return nil
	})
	return m, err
}

func putMaintenance(tx *bolt.Tx, m MaintenanceRecord) error {
	return putJSON(tx.Bucket(bucketState), keyMaintenance, m)
}

// agentState returns the agent state an operator set (zero when never
// set).
func (st *store) agentState() (AgentStateRecord, error) {
	var a AgentStateRecord
	err := st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketState).Get(keyAgentState); v != nil {
			return json.Unmarshal(v, &a)
		}
		return nil
	})
	return a, err
}

func putAgentState(tx *bolt.Tx, a AgentStateRecord) error {
	return putJSON(tx.Bucket(bucketState), keyAgentState, a)
}

// RateLimitOverride is a persisted per-user message rate. Per-socket
// overrides are applied but not persisted: socket ids do not survive a
// restart.
type RateLimitOverride struct {
	UserID    string    `json:"userId"`
	Limit     int       `json:"limit"`
	WindowMs  int64     `json:"windowMs"`
	UpdatedAt time.Time `json:"updatedAt"`
	UpdatedBy string    `json:"updatedBy,omitempty"`
}

func rateLimitKey(userID string) []byte { return []byte("user:" + userID) }

func putRateLimit(tx *bolt.Tx, o RateLimitOverride) error {
	b := tx.Bucket(bucketRateLimits)
	if o.Limit == 0 {
		return b.Delete(rateLimitKey(o.UserID))
	}
	return putJSON(b, rateLimitKey(o.UserID), o)
}

// rateLimits lists the persisted overrides by user id.
func (st *store) rateLimits() ([]RateLimitOverride, error) {
	var out []RateLimitOverride
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRateLimits).ForEach(func(k, v []byte) error {
			var o RateLimitOverride
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("rate limit %q: %w", k, err)
			}
			out = append(out, o)
			return nil
		})
	})
	return out, err
}

// alerts lists the alert rules by name.
func (st *store) alerts() ([]AlertConfig, error) {
	var out []AlertConfig
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlerts).ForEach(func(k, v []byte) error {
			var a AlertConfig
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("alert %q: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	// ForEach walks keys in byte order: the rules come sorted by name.
	return out, err
}

// getAlert returns the rule called name, if any.
func getAlert(tx *bolt.Tx, name string) (AlertConfig, bool, error) {
	var a AlertConfig
	v := tx.Bucket(bucketAlerts).Get([]byte(name))
	if v == nil {
		return a, false, nil
	}
	return a, true, json.Unmarshal(v, &a)
}

func putAlert(tx *bolt.Tx, a AlertConfig) error {
	return putJSON(tx.Bucket(bucketAlerts), []byte(a.Name), a)
}

func deleteAlert(tx *bolt.Tx, name string) error {
	return tx.Bucket(bucketAlerts).Delete([]byte(name))
}
