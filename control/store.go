package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store is one bbolt file, DataDir/control.db. bbolt commits a
// transaction with a copy-on-write B+tree and an fsync of the data and then
// the meta page, so a crash (SIGKILL, power loss) leaves either the old or
// the new state, never a torn one. Every write that an admin command is
// acknowledged for has been committed before the reply is sent.
//
// bbolt never gives space back to the file system: a page freed by a
// delete is reused, but the file never shrinks. So what is written is
// bounded, not only what is kept: the operators' audit records by count,
// age and bytes, the refusals before authentication by count in a bucket
// of their own (their records are small and of bounded size), and nothing
// at all from an address that is locked out.
//
// Buckets:
//
//	audit          8-byte big-endian sequence -> AuditRecord (JSON), every
//	               admin POST whose token verified; keys only ever grow and
//	               are pruned from the front, so the count is last-first+1
//	audit_refused  the same for admin POSTs refused before a token
//	               verified (401, 403, 429 on its first lockout, 503, a body
//	               too large), with the body's size only
//	alerts         rule name -> AlertConfig (JSON); the alerts engine adds
//	               its own buckets (alert_history, alert_silences,
//	               alert_active: see control/alerts)
//	ratelimits     "user:<id>" -> RateLimitOverride (JSON)
//	state          "maintenance" -> MaintenanceRecord (JSON),
//	               "agent" -> AgentStateRecord (JSON), what set_agent_state set,
//	               "alerts_seeded" -> "1" once the default rules were written,
//	               "alerts_seeded_v2" -> "1" once the emergency default was,
//	               "audit_bytes", "audit_refused_bytes" -> 8-byte big-endian
//	               sum of the JSON kept in each audit bucket
var (
	bucketAudit        = []byte("audit")
	bucketAuditRefused = []byte("audit_refused")
	bucketAlerts       = []byte("alerts")
	bucketRateLimits   = []byte("ratelimits")
	bucketState        = []byte("state")

	keyMaintenance    = []byte("maintenance")
	keyAgentState     = []byte("agent")
	keyAlertsSeeded   = []byte("alerts_seeded")
	keyAlertsSeededV2 = []byte("alerts_seeded_v2")
)

// StoreFile is the name of the store inside Config.DataDir.
const StoreFile = "control.db"

// auditPrunePerWrite bounds the records one write may prune, so a write
// after a long pause (or a lowered limit) does not stall; the rest goes
// with the next writes.
const auditPrunePerWrite = 256

type store struct {
	db *bolt.DB
	// audit holds the operators' records, refused the refusals before
	// authentication; both are pruned by count, age and bytes.
	audit, refused auditBucket
	maxAge         time.Duration
	now            func() time.Time
}

// auditBucket is one audit log in the store and its bounds.
type auditBucket struct {
	name       []byte
	bytesKey   []byte // in the state bucket
	maxEntries int
	maxBytes   int64
}

// maxRefusedRecordBytes bounds the JSON of one refused record (its
// fields are ours or clipped), and so the refused bucket's bytes.
const maxRefusedRecordBytes = 1024

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
	st := &store{db: db, maxAge: maxAge, now: time.Now,
		audit: auditBucket{name: bucketAudit, bytesKey: []byte("audit_bytes"), maxEntries: maxEntries, maxBytes: DefaultAuditMaxBytes},
	}
	st.setRefusedEntries(DefaultAuditRefusedEntries)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAudit, bucketAuditRefused, bucketAlerts, bucketRateLimits, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// A store written before the byte counts: count once.
		for _, a := range []*auditBucket{&st.audit, &st.refused} {
			if tx.Bucket(bucketState).Get(a.bytesKey) == nil {
				var n int64
				if err := tx.Bucket(a.name).ForEach(func(_, v []byte) error { n += int64(len(v)); return nil }); err != nil {
					return err
				}
				if err := putCount(tx, a.bytesKey, n); err != nil {
					return err
				}
			}
		}
		// The default alert rules, on first start only: a rule an operator
		// deleted stays deleted. A store seeded before the emergency
		// default existed gets that one rule once (v2).
		state := tx.Bucket(bucketState)
		rules := alerts.DefaultRules(st.now())
		switch {
		case state.Get(keyAlertsSeeded) == nil:
		case state.Get(keyAlertsSeededV2) == nil:
			rules = []alerts.Rule{alerts.EmergencyDefault(st.now())}
			if tx.Bucket(bucketAlerts).Get([]byte(rules[0].Name)) != nil {
				rules = nil
			}
		default:
			return nil
		}
		for _, a := range rules {
			if err := putJSON(tx.Bucket(bucketAlerts), []byte(a.Name), a); err != nil {
				return err
			}
		}
		if err := state.Put(keyAlertsSeeded, []byte("1")); err != nil {
			return err
		}
		return state.Put(keyAlertsSeededV2, []byte("1"))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("control: initialise store %s: %w", path, err)
	}
	return st, nil
}

func (st *store) close() error { return st.db.Close() }

// setRefusedEntries bounds the refused bucket to n records.
func (st *store) setRefusedEntries(n int) {
	st.refused = auditBucket{name: bucketAuditRefused, bytesKey: []byte("audit_refused_bytes"),
		maxEntries: n, maxBytes: int64(n) * maxRefusedRecordBytes}
}

func getCount(tx *bolt.Tx, key []byte) int64 {
	if v := tx.Bucket(bucketState).Get(key); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func putCount(tx *bolt.Tx, key []byte, n int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(max(n, 0)))
	return tx.Bucket(bucketState).Put(key, v[:])
}

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

// appendAudit commits rec, an operator's record, on its own. Concurrent
// calls share one commit (bbolt's Batch); each call returns after the
// commit that holds its record.
func (st *store) appendAudit(rec *AuditRecord) error {
	return st.db.Batch(func(tx *bolt.Tx) error { return st.putAudit(tx, rec) })
}

// appendRefused commits rec, a refusal before authentication, in the
// refused bucket, sharing commits as appendAudit does.
func (st *store) appendRefused(rec *AuditRecord) error {
	return st.db.Batch(func(tx *bolt.Tx) error { return st.put(tx, &st.refused, rec) })
}

// putAudit adds rec to the operators' records in tx.
func (st *store) putAudit(tx *bolt.Tx, rec *AuditRecord) error {
	return st.put(tx, &st.audit, rec)
}

// put adds rec to a in tx, numbering it, and prunes from the front what
// the bounds allow: while there are more than maxEntries records, their
// bytes pass maxBytes, or the first is older than maxAge (at most
// auditPrunePerWrite records a write). The record just added is never
// pruned.
func (st *store) put(tx *bolt.Tx, a *auditBucket, rec *AuditRecord) error {
	b := tx.Bucket(a.name)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec.Seq = seq
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), data); err != nil {
		return err
	}
	total := getCount(tx, a.bytesKey) + int64(len(data))
	c := b.Cursor()
	cutoff := st.now().Add(-st.maxAge)
	for i := 0; i < auditPrunePerWrite; i++ {
		k, v := c.First()
		if k == nil || binary.BigEndian.Uint64(k) == seq {
			break
		}
		count := seq - binary.BigEndian.Uint64(k) + 1
		if count <= uint64(a.maxEntries) && total <= a.maxBytes {
			var head struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(v, &head) == nil && !head.Time.Before(cutoff) {
				break
			}
		}
		total -= int64(len(v))
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return putCount(tx, a.bytesKey, total)
}

// auditList returns up to limit of the operators' records (or, with
// refused, of the refusals before authentication) newest first, only those
// at or after since when since is not zero, only those with seq below
// before when before is not zero (paging backwards), and only those match
// keeps (nil keeps all).
func (st *store) auditList(refused bool, limit int, since time.Time, before uint64, match func(*AuditRecord) bool) ([]AuditRecord, error) {
	name := bucketAudit
	if refused {
		name = bucketAuditRefused
	}
	var out []AuditRecord
	err := st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(name).Cursor()
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

// auditCount returns the number of records kept in a and their bytes.
func (st *store) auditCount(a *auditBucket) (n int, bytes int64, err error) {
	err = st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(a.name).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first != nil {
			n = int(binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1)
		}
		bytes = getCount(tx, a.bytesKey)
		return nil
	})
	return n, bytes, err
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
