package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockmon/sockmon/metrics"
	bolt "go.etcd.io/bbolt"
)

// Defaults of Config, in one place.
const (
	DefaultInterval          = 5 * time.Second
	DefaultGroupWait         = 10 * time.Second
	DefaultRepeatInterval    = 4 * time.Hour
	DefaultFlapWindow        = 10 * time.Minute
	DefaultResolvedRetention = 15 * time.Minute
	DefaultHistoryMaxEntries = 10_000
	DefaultHistoryMaxAge     = 30 * 24 * time.Hour
	DefaultHookQueue         = 1024
	DefaultCluster           = "sockmon"

	// ActorAlerts is the actor of what the engine does itself, in the
	// history and in the audit log.
	ActorAlerts = "alerts"

	// alertmanagerResend is how long a resolved alert is still pushed to
	// Alertmanager (its API asks clients to re-send resolved alerts for up
	// to 5 minutes).
	alertmanagerResend = 5 * time.Minute
)

// Remediator applies and undoes remediations. control implements it: it
// turns load shedding or maintenance on while at least one rule wants it,
// and audits every call as actor "alerts". It is called on the evaluation
// goroutine, one call at a time, and must return promptly.
type Remediator interface {
	Remediate(kind Remediation, on bool, rule, reason string) error
}

// Config configures an Engine. A zero field means its default.
type Config struct {
	// DB is the store the history, silences and firing alerts live in (the
	// control store). Required; the engine creates its buckets.
	DB *bolt.DB
	// Metrics is read once per evaluation (Snapshot) and receives the
	// engine's own series. Required.
	Metrics *metrics.Metrics
	// Sources are what the snapshot does not hold.
	Sources Sources
	// Remediator applies remediations; nil logs them without applying.
	Remediator Remediator
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject one and call
	// Evaluate themselves.
	Now func() time.Time

	// Interval is the evaluation period (--alert-interval). Default 5s.
	Interval time.Duration
	// GroupWait: alerts that fire within it go out as one message per
	// channel (--alert-group-wait). Default 10s. Negative: no wait.
	GroupWait time.Duration
	// RepeatInterval re-notifies an alert that keeps firing without being
	// acknowledged. Default 4h; negative disables.
	RepeatInterval time.Duration
	// FlapWindow is the flap damping: an alert that fires again within it
	// of its last resolve is flapping, and then stays firing until its
	// condition has been clear for a whole FlapWindow. Default 10m;
	// negative disables.
	FlapWindow time.Duration
	// ResolvedRetention is how long a resolved alert is listed by Alerts.
	// Default 15m.
	ResolvedRetention time.Duration
	// HistoryMaxEntries and HistoryMaxAge bound the history. Defaults
	// 10000 and 30 days.
	HistoryMaxEntries int
	HistoryMaxAge     time.Duration

	// Channels are the notification channels configured by flags and the
	// environment; a rules file may add or replace some (ApplyFile).
	Channels []ChannelConfig
	// Routes maps each level to channel names ("*": every channel); a
	// level without a route uses DefaultRoutes. A rules file may replace
	// routes.
	Routes map[Level][]string
	// Notify tunes delivery: timeouts, retries, queue, breakers.
	Notify NotifyOptions

	// Instance names this node in labels (instance), PagerDuty's source
	// and dedup_key; default the host name. Cluster is the first part of
	// the dedup_key; default "sockmon".
	Instance string
	Cluster  string
	// ExternalURL is where an operator finds this node (the
	// generatorURL and externalURL of what is sent), e.g.
	// http://node1:8081/dashboard. Optional.
	ExternalURL string
	// HookQueue bounds the events waiting for OnAlert hooks. Default 1024.
	HookQueue int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.GroupWait == 0 {
		c.GroupWait = DefaultGroupWait
	}
	if c.RepeatInterval == 0 {
		c.RepeatInterval = DefaultRepeatInterval
	}
	if c.FlapWindow == 0 {
		c.FlapWindow = DefaultFlapWindow
	}
	if c.ResolvedRetention == 0 {
		c.ResolvedRetention = DefaultResolvedRetention
	}
	if c.HistoryMaxEntries == 0 {
		c.HistoryMaxEntries = DefaultHistoryMaxEntries
	}
	if c.HistoryMaxAge == 0 {
		c.HistoryMaxAge = DefaultHistoryMaxAge
	}
	if c.HookQueue == 0 {
		c.HookQueue = DefaultHookQueue
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
		if c.Instance == "" {
			c.Instance = "sockmon"
		}
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	c.Notify.setDefaults()
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("alerts: "+format, args...)) }
	if c.DB == nil {
		bad("a store (DB) is required")
	}
	if c.Metrics == nil {
		bad("metrics are required")
	}
	if c.Interval < 10*time.Millisecond || c.Interval > time.Hour {
		bad("interval %v: want between 10ms and 1h", c.Interval)
	}
	if c.GroupWait > time.Hour {
		bad("group wait %v: at most 1h", c.GroupWait)
	}
	if c.HistoryMaxEntries < 1 {
		bad("history max entries %d: want at least 1", c.HistoryMaxEntries)
	}
	if c.HistoryMaxAge < time.Minute {
		bad("history max age %v: want at least 1m", c.HistoryMaxAge)
	}
	if err := c.Notify.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Engine evaluates alert rules against the metrics and notifies. Create it
// with New, give it rules (SetStoredRules, ApplyFile), run it with Start,
// stop it with Close. Every method is safe for concurrent use. It reads
// metrics snapshots only: it never touches the message path.
//
// Goroutines: the evaluation loop (Start), one sender per channel, and
// one for the OnAlert hooks; Close stops them all.
//
// Locks: evalMu serialises evaluations; mu guards the rules, the alert
// states, the silences and the routes, and is never held across I/O (the
// store, a send, a hook, a remediation).
type Engine struct {
	cfg Config
	log *slog.Logger

	evalMu sync.Mutex
	rates  rates // evalMu

	mu         sync.Mutex
	stored     []Rule
	file       []Rule
	fileLoaded bool
	rules      []Rule // effective: stored overlaid by file, by name
	states     map[string]*alertState
	restored   map[string]activeRecord
	silences   []Silence
	routes     map[Level][]string
	lastValues map[string]Value
	lastEval   time.Time

	notifier *notifier
	prom     *promSeries

	hookMu   sync.RWMutex
	hooks    []func(AlertEvent)
	hookCh   chan AlertEvent
	hookDrop atomic.Uint64

	runMu   sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New checks cfg, creates the engine's buckets, loads the silences and the
// alerts that were firing when the node stopped, and builds the channels.
// It does not evaluate until Start (or Evaluate).
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := initBuckets(cfg.DB); err != nil {
		return nil, fmt.Errorf("alerts: create buckets: %w", err)
	}
	sil, err := loadSilences(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("alerts: load silences: %w", err)
	}
	act, err := loadActive(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("alerts: load firing alerts: %w", err)
	}
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "alerts"),
		states:   map[string]*alertState{},
		restored: act,
		silences: sil,
		routes:   mergeRoutes(DefaultRoutes(), cfg.Routes),
		hookCh:   make(chan AlertEvent, cfg.HookQueue),
		stop:     make(chan struct{}),
	}
	e.prom, err = newPromSeries(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	e.notifier = newNotifier(e)
	if err := e.notifier.configure(cfg.Channels); err != nil {
		return nil, err
	}
	e.wg.Add(1)
	go e.runHooks()
	return e, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) now() time.Time { return e.cfg.Now() }

// Start runs the evaluation loop: an evaluation every Interval, the first
// one at once. Calling it again, or after Close, does nothing.
func (e *Engine) Start() {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.started || e.closed {
		return
	}
	e.started = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(e.cfg.Interval)
		defer t.Stop()
		for {
			e.safeEvaluate()
			select {
			case <-t.C:
			case <-e.stop:
				return
			}
		}
	}()
}

// safeEvaluate runs Evaluate and logs a panic instead of dying: an alert
// engine that crashes the server would be worse than none.
func (e *Engine) safeEvaluate() {
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("panic in an alert evaluation", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	e.Evaluate()
}

// Close stops the evaluation loop, the senders and the hooks, giving the
// senders until ctx ends to deliver what is queued. Calling it again
// returns at once.
func (e *Engine) Close(ctx context.Context) error {
	e.runMu.Lock()
	if e.closed {
		e.runMu.Unlock()
		return nil
	}
	e.closed = true
	close(e.stop)
	e.runMu.Unlock()
	err := e.notifier.close(ctx)
	close(e.hookCh)
	e.wg.Wait()
	return err
}

// OnAlert registers f to be called with every alert event (transitions,
// acknowledgements, silenced notifications, remediations). Hooks run one
// event at a time, in order, on a goroutine of their own, never on the
// evaluation goroutine: a slow hook delays the next hooks, not the
// evaluation. When HookQueue events are waiting, new ones are dropped,
// counted (HookDropped) and logged. A panicking hook is logged.
func (e *Engine) OnAlert(f func(AlertEvent)) {
	e.hookMu.Lock()
	e.hooks = append(e.hooks, f)
	e.hookMu.Unlock()
}

// HookDropped is the number of events dropped because the hooks were too
// slow.
func (e *Engine) HookDropped() uint64 { return e.hookDrop.Load() }

func (e *Engine) runHooks() {
	defer e.wg.Done()
	for ev := range e.hookCh {
		e.hookMu.RLock()
		hooks := e.hooks
		e.hookMu.RUnlock()
		for _, f := range hooks {
			func() {
				defer func() {
					if v := recover(); v != nil {
						e.log.Error("panic in an OnAlert hook", "panic", fmt.Sprint(v))
					}
				}()
				f(ev)
			}()
		}
	}
}

func (e *Engine) emitHook(ev AlertEvent) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.closed {
		return
	}
	select {
	case e.hookCh <- ev:
	default:
		if n := e.hookDrop.Add(1); n&(n-1) == 0 { // log at powers of two
			e.log.Warn("OnAlert hooks too slow: events dropped", "dropped", n)
		}
	}
}

// SetStoredRules replaces the rules of the store (defaults and
// configure_alert). Rules of the same name in the rules file win.
func (e *Engine) SetStoredRules(rules []Rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stored = slices.Clone(rules)
	e.rebuildLocked()
}

// FileRule reports whether the rule called name comes from the rules
// file (and so cannot be changed through configure_alert).
func (e *Engine) FileRule(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.file, func(r Rule) bool { return r.Name == name })
}

// rebuildLocked computes the effective rules. e.mu held.
func (e *Engine) rebuildLocked() {
	byName := map[string]Rule{}
	for _, r := range e.stored {
		r.Source = SourceStore
		byName[r.Name] = r
	}
	for _, r := range e.file {
		r.Source = SourceFile
		byName[r.Name] = r
	}
	e.rules = e.rules[:0]
	for _, r := range byName {
		e.rules = append(e.rules, r)
	}
	slices.SortFunc(e.rules, func(a, b Rule) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
}

// ApplyFile puts a parsed rules file in force: its rules (overlaying the
// stored ones by name), its channels (adding to or replacing those of the
// flags) and its routes. Channels are built first: if one cannot be, the
// error says which and nothing changes.
func (e *Engine) ApplyFile(f *File) error {
	chans := mergeChannels(e.cfg.Channels, f.Channels)
	if err := e.notifier.configure(chans); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.file = slices.Clone(f.Rules)
	e.fileLoaded = true
	e.routes = mergeRoutes(mergeRoutes(DefaultRoutes(), e.cfg.Routes), f.Routes)
	e.rebuildLocked()
	return nil
}

// RuleStatus is a rule with where it comes from and how it evaluates now.
type RuleStatus struct {
	Rule
	State State `json:"state"`
	// Value is the metric at the last evaluation; absent when unknown,
	// and then Unknown says why (the rule cannot fire).
	Value   *float64 `json:"value,omitempty"`
	Unknown string   `json:"unknown,omitempty"`
}

// Rules lists the rules in force by name, with their state and value at
// the last evaluation.
func (e *Engine) Rules() []RuleStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RuleStatus, 0, len(e.rules))
	for _, r := range e.rules {
		rs := RuleStatus{Rule: r, State: StateInactive}
		if st := e.states[r.Name]; st != nil && r.Enabled {
			rs.State = st.state
		}
		if v, ok := e.lastValues[r.Metric]; ok {
			if v.Known {
				val := v.V
				rs.Value = &val
			} else {
				rs.Unknown = v.Why
			}
		}
		out = append(out, rs)
	}
	return out
}

// Alerts lists the alerts that are pending, firing, or resolved within
// ResolvedRetention, by name.
func (e *Engine) Alerts() []Alert {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Alert{}
	for _, r := range e.rules {
		st := e.states[r.Name]
		if st == nil || st.state == StateInactive {
			continue
		}
		out = append(out, e.view(st, now))
	}
	return out
}

// ErrNotFiring is returned by Acknowledge when the rule has no firing
// alert.
var ErrNotFiring = errors.New("alerts: no firing alert of that name")

// Acknowledge marks the firing alert of rule name as acknowledged by by:
// it is no longer re-notified, its remediation may stay on past
// MaxRemediationMs, and PagerDuty is told (acknowledge). It is in the
// history and goes to the hooks.
func (e *Engine) Acknowledge(name, by, comment string) (Alert, error) {
	now := e.now()
	var out effects
	e.mu.Lock()
	st := e.states[name]
	if st == nil || st.state != StateFiring {
		e.mu.Unlock()
		return Alert{}, ErrNotFiring
	}
	if !st.acked {
		st.acked, st.ackedBy, st.ackedAt = true, by, now
		a := e.view(st, now)
		out.event(&a, EventAcknowledged, now, by, comment)
		out.persist(st)
		for _, ch := range st.notified {
			if e.notifier.acknowledges(ch) {
				out.notes = append(out.notes, note{channel: ch, alert: a, reason: EventAcknowledged})
			}
		}
	}
	a := e.view(st, now)
	e.mu.Unlock()
	e.applyEffects(&out)
	return a, nil
}

// LastEvaluation is when the engine last evaluated (zero before the
// first).
func (e *Engine) LastEvaluation() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastEval
}
