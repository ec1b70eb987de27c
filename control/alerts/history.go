package alerts

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The engine's persistent state lives in buckets of the control store (one
// bbolt file; a commit survives SIGKILL and power loss):
//
//	alert_history   8-byte big-endian sequence -> HistoryEntry (JSON); keys
//	                only grow and are pruned from the front, by count and age
//	alert_silences  silence id -> Silence (JSON)
//	alert_active    rule name -> activeRecord (JSON): the alerts that fire,
//	                so that a restarted node resumes them (and sends their
//	                resolve) instead of forgetting them
var (
	bucketHistory  = []byte("alert_history")
	bucketSilences = []byte("alert_silences")
	bucketActive   = []byte("alert_active")
)

// historyPrunePerWrite bounds the entries one write prunes.
const historyPrunePerWrite = 256

// HistoryEntry is one transition or action of an alert.
type HistoryEntry struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	// Kind is one of the Event constants; State is the alert's state
	// after it.
	Kind      string  `json:"kind"`
	State     State   `json:"state"`
	Level     Level   `json:"level"`
	Metric    string  `json:"metric"`
	Operator  string  `json:"operator"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Actor     string  `json:"actor,omitempty"`
	Detail    string  `json:"detail,omitempty"`
}

// HistoryQuery selects history entries; zero fields select everything.
// Entries come newest first.
type HistoryQuery struct {
	Name  string
	Level Level
	Since time.Time
	Until time.Time
	// Limit is at most 1000; 0 means 100.
	Limit int
}

// initBuckets creates the engine's buckets.
func initBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHistory, bucketSilences, bucketActive} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// putHistory appends the entries in tx and prunes by count and age.
func putHistory(tx *bolt.Tx, entries []HistoryEntry, maxEntries int, maxAge time.Duration, now time.Time) error {
	b := tx.Bucket(bucketHistory)
	var last uint64
	for i := range entries {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		entries[i].Seq, last = seq, seq
		data, err := json.Marshal(&entries[i])
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
	}
	if last == 0 {
		return nil
	}
	c := b.Cursor()
	cutoff := now.Add(-maxAge)
	for range historyPrunePerWrite {
		k, v := c.First()
		if k == nil || binary.BigEndian.Uint64(k) == last {
			break
		}
		if count := last - binary.BigEndian.Uint64(k) + 1; count <= uint64(maxEntries) {
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

// History returns the history entries q selects, newest first.
func (e *Engine) History(q HistoryQuery) ([]HistoryEntry, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	out := []HistoryEntry{}
	err := e.cfg.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Last(); k != nil && len(out) < q.Limit; k, v = c.Prev() {
			var h HistoryEntry
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("alert history entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !q.Since.IsZero() && h.Time.Before(q.Since) {
				break
			}
			if !q.Until.IsZero() && h.Time.After(q.Until) {
				continue
			}
			if (q.Name != "" && h.Name != q.Name) || (q.Level != "" && h.Level != q.Level) {
				continue
			}
			out = append(out, h)
		}
		return nil
	})
	return out, err
}

// HistoryCount returns the number of history entries kept.
func (e *Engine) HistoryCount() (int, error) {
	n := 0
	err := e.cfg.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first != nil {
			n = int(binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1)
		}
		return nil
	})
	return n, err
}

// activeRecord is a firing alert as persisted in alert_active.
type activeRecord struct {
	Rule         string    `json:"rule"`
	Level        Level     `json:"level"`
	ActiveAt     time.Time `json:"activeAt"`
	StartsAt     time.Time `json:"startsAt"`
	Escalations  int       `json:"escalations"`
	Acknowledged bool      `json:"acknowledged,omitempty"`
	AckedBy      string    `json:"acknowledgedBy,omitempty"`
	AckedAt      time.Time `json:"acknowledgedAt,omitzero"`
	Flapping     bool      `json:"flapping,omitempty"`
	Value        float64   `json:"value"`
	Notified     []string  `json:"notified,omitempty"`
}

func loadActive(db *bolt.DB) (map[string]activeRecord, error) {
	out := map[string]activeRecord{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActive).ForEach(func(k, v []byte) error {
			var r activeRecord
			if json.Unmarshal(v, &r) == nil {
				out[string(k)] = r
			}
			return nil
		})
	})
	return out, err
}
