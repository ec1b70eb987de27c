package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Silences hold back notifications of the alerts they match for a time
// window (Alertmanager's silences, on name, level and labels). A silenced
// alert is still evaluated, listed and kept in the history; its triggers,
// repeats and escalations are not sent, and the history says "silenced"
// once per firing. A resolve still goes to the channels that were told the
// alert fired, so no incident is left open.

// Silence is one silence. Every matcher that is set must match.
type Silence struct {
	ID string `json:"id"`
	// Name matches the rule name exactly; empty matches every rule.
	Name string `json:"name,omitempty"`
	// Level matches the alert's current level; empty matches every level.
	Level Level `json:"level,omitempty"`
	// Labels must all be present on the alert with these values.
	Labels    map[string]string `json:"labels,omitempty"`
	StartsAt  time.Time         `json:"startsAt"`
	EndsAt    time.Time         `json:"endsAt"`
	Comment   string            `json:"comment,omitempty"`
	CreatedBy string            `json:"createdBy"`
	CreatedAt time.Time         `json:"createdAt"`
	// ExpiredBy is set when an operator expired the silence early.
	ExpiredBy string `json:"expiredBy,omitempty"`
}

// Active reports whether s holds at t.
func (s *Silence) Active(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

// matches reports whether s's matchers match a.
func (s *Silence) matches(a *Alert) bool {
	if s.Name != "" && s.Name != a.Name {
		return false
	}
	if s.Level != "" && s.Level != a.Level {
		return false
	}
	for k, v := range s.Labels {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// Silence limits.
const (
	MaxSilences        = 1000
	maxSilenceDuration = 30 * 24 * time.Hour
	// silenceKeep is how long an ended silence stays listed.
	silenceKeep = 24 * time.Hour
)

// ErrNoSuchSilence is returned by ExpireSilence for an unknown id.
var ErrNoSuchSilence = errors.New("alerts: no such silence")

// AddSilence checks and stores s (ID, CreatedAt and CreatedBy are set
// here; a zero StartsAt means now) and returns it. The error is a
// *FieldError naming the data field at fault for a bad silence.
func (e *Engine) AddSilence(s Silence, by string) (Silence, error) {
	now := e.now()
	if s.Name == "" && s.Level == "" && len(s.Labels) == 0 {
		return s, fieldErr("data.name", "a silence needs at least one matcher: name, level or labels")
	}
	if s.Name != "" {
		if fe := ValidName("data.name", s.Name); fe != nil {
			return s, fe
		}
	}
	if s.Level != "" && !s.Level.Valid() {
		return s, fieldErr("data.level", "%q is not one of info, warning, critical, emergency", s.Level)
	}
	if len(s.Labels) > MaxLabels {
		return s, fieldErr("data.labels", "%d labels, at most %d", len(s.Labels), MaxLabels)
	}
	for k := range s.Labels {
		if !labelNameRE.MatchString(k) {
			return s, fieldErr("data.labels."+k, "label name: want [a-zA-Z_][a-zA-Z0-9_]*")
		}
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	switch {
	case s.EndsAt.IsZero():
		return s, fieldErr("data.endsAt", "required (or durationMs)")
	case !s.EndsAt.After(s.StartsAt):
		return s, fieldErr("data.endsAt", "must be after startsAt")
	case !s.EndsAt.After(now):
		return s, fieldErr("data.endsAt", "is in the past")
	case s.EndsAt.Sub(s.StartsAt) > maxSilenceDuration:
		return s, fieldErr("data.endsAt", "a silence lasts at most 30 days")
	}
	if len(s.Comment) > MaxDescriptionBytes {
		return s, fieldErr("data.comment", "%d bytes, at most %d", len(s.Comment), MaxDescriptionBytes)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s.ID, s.CreatedBy, s.CreatedAt = hex.EncodeToString(id[:]), by, now
	s.Labels = cloneMap(s.Labels)
	err := e.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSilences)
		if b.Stats().KeyN >= MaxSilences {
			pruneSilences(b, now)
			if b.Stats().KeyN >= MaxSilences {
				return fieldErr("data", "%d silences already; expire some first", MaxSilences)
			}
		}
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return b.Put([]byte(s.ID), data)
	})
	if err != nil {
		return s, err
	}
	e.mu.Lock()
	e.silences = append(e.silences, s)
	e.mu.Unlock()
	e.log.Info("silence added", "id", s.ID, "name", s.Name, "level", s.Level, "endsAt", s.EndsAt, "by", by)
	return s, nil
}

// pruneSilences deletes silences that ended more than silenceKeep ago.
func pruneSilences(b *bolt.Bucket, now time.Time) {
	var old [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		var s Silence
		if json.Unmarshal(v, &s) != nil || now.Sub(s.EndsAt) > silenceKeep {
			old = append(old, slices.Clone(k))
		}
		return nil
	})
	for _, k := range old {
		_ = b.Delete(k)
	}
}

// ExpireSilence ends the silence id now.
func (e *Engine) ExpireSilence(id, by string) (Silence, error) {
	now := e.now()
	var s Silence
	err := e.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSilences)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNoSuchSilence
		}
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("silence %s: %w", id, err)
		}
		if s.EndsAt.After(now) {
			s.EndsAt, s.ExpiredBy = now, by
		}
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), data)
	})
	if err != nil {
		return s, err
	}
	e.mu.Lock()
	for i := range e.silences {
		if e.silences[i].ID == id {
			e.silences[i] = s
		}
	}
	e.mu.Unlock()
	e.log.Info("silence expired", "id", id, "by", by)
	return s, nil
}

// Silences lists the silences that are active, pending or ended within
// the last day, by start time.
func (e *Engine) Silences() []Silence {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Silence{}
	for _, s := range e.silences {
		if now.Sub(s.EndsAt) <= silenceKeep {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Silence) int { return a.StartsAt.Compare(b.StartsAt) })
	return out
}

func loadSilences(db *bolt.DB) ([]Silence, error) {
	var out []Silence
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSilences).ForEach(func(k, v []byte) error {
			var s Silence
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("silence %q: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// silencedBy lists the ids of the active silences matching a; e.mu held.
func (e *Engine) silencedBy(a *Alert, now time.Time) []string {
	var ids []string
	for i := range e.silences {
		if s := &e.silences[i]; s.Active(now) && s.matches(a) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}
