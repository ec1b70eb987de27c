package alerts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/breaker"
)

// Delivery. Every channel has its own queue, its own sender goroutine and
// its own circuit breaker (netcore/breaker), so a receiver that hangs,
// fails or resets connections delays only its own channel: the evaluation
// only appends to queues, under a short mutex.
//
// A queue holds alert notifications, at most one per alert (its latest
// state: a resolve replaces the trigger it follows), at most QueueLimit in
// all. A notification is retried until it is delivered: each attempt has
// SendTimeout, failures back off exponentially (RetryBase doubling up to
// RetryMax, with jitter), and while the breaker is open nothing is tried.
// A resolve is never lost behind a failed trigger: it replaces it. What
// QueueLimit pushes out (triggers first, the oldest first) is counted as
// dropped and logged. Answers that retrying cannot fix (a 4xx other than
// 408 and 429) drop the message at once, counted as a failure.
//
// Grouping: a channel waits GroupWait after the first notification of a
// group, then sends everything queued as one message (at most MaxBatch
// alerts); Alertmanager channels do not wait (Alertmanager groups).

// NotifyOptions tune delivery. Zero fields mean the defaults.
type NotifyOptions struct {
	// SendTimeout bounds one attempt (a connection, a request, an SMTP
	// session). Default 10s.
	SendTimeout time.Duration
	// RetryBase and RetryMax shape the backoff between failed attempts.
	// Defaults 1s and 5m.
	RetryBase time.Duration
	RetryMax  time.Duration
	// QueueLimit bounds each channel's queue. Default 1000.
	QueueLimit int
	// MaxBatch bounds the alerts of one message. Default 100.
	MaxBatch int
	// Breaker configures each channel's circuit breaker; zero fields are
	// netcore/breaker's defaults.
	Breaker breaker.Config
	// HTTPClient sends the HTTP notifications; default a client that
	// follows no redirect (a redirect could carry a signed body or a
	// routing key elsewhere).
	HTTPClient *http.Client
	// Rand returns a number in [0, 1) for the jitter; default
	// math/rand/v2.Float64.
	Rand func() float64
}

// Defaults of NotifyOptions.
const (
	DefaultSendTimeout = 10 * time.Second
	DefaultRetryBase   = time.Second
	DefaultRetryMax    = 5 * time.Minute
	DefaultQueueLimit  = 1000
	DefaultMaxBatch    = 100
)

func (o *NotifyOptions) setDefaults() {
	if o.SendTimeout == 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.RetryBase == 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax == 0 {
		o.RetryMax = max(DefaultRetryMax, o.RetryBase)
	}
	if o.QueueLimit == 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
}

func (o *NotifyOptions) validate() error {
	var errs []error
	if o.SendTimeout < time.Millisecond || o.RetryBase < time.Millisecond || o.RetryMax < o.RetryBase {
		errs = append(errs, fmt.Errorf("alerts: send timeout %v, retry base %v, retry max %v: want positive, max >= base", o.SendTimeout, o.RetryBase, o.RetryMax))
	}
	if o.QueueLimit < 1 || o.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("alerts: queue limit %d, max batch %d: want at least 1", o.QueueLimit, o.MaxBatch))
	}
	if err := o.Breaker.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("alerts: channel breaker: %w", err))
	}
	return errors.Join(errs...)
}

// note is one alert notification for one channel.
type note struct {
	channel string
	alert   Alert
	// reason is firing, escalated, repeat, resolved, acknowledged or push.
	reason string
}

// message is what a sender sends: one group of alerts.
type message struct {
	channel  string
	alerts   []Alert
	reasons  []string // per alert
	test     bool
	instance string
	cluster  string
	extURL   string
}

// sender delivers messages of one channel type.
type sender interface {
	send(ctx context.Context, m *message) error
}

// permanentError is a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// httpStatusError is a receiver's non-2xx answer.
type httpStatusError struct {
	status int
	body   string
}

func (h *httpStatusError) Error() string {
	if h.body == "" {
		return fmt.Sprintf("HTTP %d", h.status)
	}
	return fmt.Sprintf("HTTP %d: %s", h.status, h.body)
}

// statusError classifies an HTTP answer: 408, 429 and 5xx are retried,
// other 4xx are permanent.
func statusError(status int, body string) error {
	err := &httpStatusError{status: status, body: body}
	if status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500 {
		return err
	}
	return &permanentError{err}
}

// cleanError strips what an error may say about the URL it was sending to
// (a Slack URL is a secret): net/http's *url.Error quotes it.
func cleanError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// errorClass is the breaker's short name of a failure.
func errorClass(err error) string {
	var hs *httpStatusError
	var ne net.Error
	switch {
	case errors.As(err, &hs) && hs.status == http.StatusTooManyRequests:
		return "http_429"
	case errors.As(err, &hs) && hs.status >= 500:
		return "http_5xx"
	case errors.As(err, &hs):
		return "http_4xx"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "connection"
}

// Results of sockmon_alert_notifications_total.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	resultDropped = "dropped"
)

type notifier struct {
	e    *Engine
	opts NotifyOptions

	mu       sync.Mutex
	chans    map[string]*channel
	counters map[string][3]*metrics.Counter
	closed   bool
	removed  sync.WaitGroup // channels a reload removed, still stopping
}

func newNotifier(e *Engine) *notifier {
	return &notifier{e: e, opts: e.cfg.Notify, chans: map[string]*channel{}, counters: map[string][3]*metrics.Counter{}}
}

func newSender(n *notifier, c *ChannelConfig) sender {
	switch c.Type {
	case TypeWebhook:
		return &webhookSender{cfg: c, client: n.opts.HTTPClient}
	case TypeSlack:
		return &slackSender{cfg: c, client: n.opts.HTTPClient}
	case TypePagerDuty:
		return &pagerDutySender{cfg: c, client: n.opts.HTTPClient}
	case TypeEmail:
		return &emailSender{cfg: c}
	case TypeAlertmanager:
		return &alertmanagerSender{cfg: c, client: n.opts.HTTPClient}
	}
	return nil
}

// configure puts chans in force: unchanged channels keep their queue,
// changed ones get a new sender and keep their queue, removed ones stop
// (what they held is dropped and counted). Every channel is checked first;
// an error changes nothing.
func (n *notifier) configure(chans []ChannelConfig) error {
	seen := map[string]bool{}
	for i := range chans {
		c := &chans[i]
		if err := c.validate(fmt.Sprintf("channel %q: ", c.Name)); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		if seen[c.Name] {
			return fmt.Errorf("alerts: channel %q configured twice", c.Name)
		}
		seen[c.Name] = true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("alerts: closed")
	}
	for i := range chans {
		c := chans[i]
		if _, ok := n.counters[c.Name]; !ok {
			var cs [3]*metrics.Counter
			for j, res := range []string{resultSuccess, resultFailure, resultDropped} {
				ctr, err := n.e.cfg.Metrics.RegisterCounter("sockmon_alert_notifications_total",
					`channel=`+quote(c.Name)+`,result="`+res+`"`, notificationsHelp)
				if err != nil {
					return fmt.Errorf("alerts: register the metrics of channel %q: %w", c.Name, err)
				}
				cs[j] = ctr
			}
			n.counters[c.Name] = cs
		}
		if old := n.chans[c.Name]; old != nil {
			if old.cfgKey != c.key() {
				old.setConfig(&c, newSender(n, &c))
			}
			continue
		}
		br, err := breaker.New("alert:"+c.Name, n.opts.Breaker)
		if err != nil {
			return err
		}
		ch := &channel{n: n, cfg: c, cfgKey: c.key(), s: newSender(n, &c), br: br, counters: n.counters[c.Name],
			wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), attempted: map[string]bool{}}
		ch.ctx, ch.cancel = context.WithCancel(context.Background())
		ch.groupWait = max(n.e.cfg.GroupWait, 0)
		if c.Type == TypeAlertmanager {
			ch.groupWait = 0
		}
		n.chans[c.Name] = ch
		go ch.run()
	}
	for name, ch := range n.chans {
		if !seen[name] {
			// Stopped off the caller's goroutine: a send in flight is
			// cancelled, but the reload does not wait for it.
			delete(n.chans, name)
			n.removed.Add(1)
			go func() { defer n.removed.Done(); ch.shutdown(nil) }()
		}
	}
	return nil
}

const notificationsHelp = "Alert notifications by channel and result: success and failure count delivery attempts, dropped counts notifications lost at the queue limit."

func quote(s string) string { return fmt.Sprintf("%q", s) }

// names lists the configured channels, sorted.
func (n *notifier) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.chans))
	for name := range n.chans {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func (n *notifier) get(name string) *channel {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chans[name]
}

// isPush reports whether the channel is pushed every evaluation
// (Alertmanager) rather than notified on transitions.
func (n *notifier) isPush(name string) bool {
	ch := n.get(name)
	return ch != nil && ch.cfg.Type == TypeAlertmanager
}

func (n *notifier) pushChannels() []string {
	var out []string
	for _, name := range n.names() {
		if n.isPush(name) {
			out = append(out, name)
		}
	}
	return out
}

// acknowledges reports whether the channel is told of acknowledgements
// (PagerDuty).
func (n *notifier) acknowledges(name string) bool {
	ch := n.get(name)
	return ch != nil && ch.cfg.Type == TypePagerDuty
}

// markAttempted records that a trigger of fp may have reached the
// channel (an alert resumed from the store).
func (n *notifier) markAttempted(name, fp string) {
	if ch := n.get(name); ch != nil {
		ch.mu.Lock()
		ch.attempted[fp] = true
		ch.mu.Unlock()
	}
}

func (n *notifier) enqueue(nt note) {
	if ch := n.get(nt.channel); ch != nil {
		ch.add(nt)
	}
}

// close stops every channel, giving each until ctx ends to deliver what
// it holds.
func (n *notifier) close(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	chans := make([]*channel, 0, len(n.chans))
	for _, ch := range n.chans {
		chans = append(chans, ch)
	}
	n.chans = map[string]*channel{}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Add(1)
		go func() { defer wg.Done(); ch.shutdown(ctx) }()
	}
	wg.Wait()
	n.removed.Wait()
	return ctx.Err()
}

// views lists the channels for the admin API.
func (n *notifier) views() []ChannelView {
	n.mu.Lock()
	chans := make([]*channel, 0, len(n.chans))
	for _, ch := range n.chans {
		chans = append(chans, ch)
	}
	n.mu.Unlock()
	out := make([]ChannelView, 0, len(chans))
	for _, ch := range chans {
		out = append(out, ch.view())
	}
	slices.SortFunc(out, func(a, b ChannelView) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out
}

// item is a queued notification.
type item struct {
	note
	key    string
	queued time.Time
}

// channel is one channel's queue and sender goroutine.
type channel struct {
	n         *notifier
	br        *breaker.Breaker
	counters  [3]*metrics.Counter
	groupWait time.Duration

	mu        sync.Mutex
	cfg       ChannelConfig
	cfgKey    string
	s         sender
	items     []*item
	attempted map[string]bool // fingerprint: a trigger may have reached the receiver
	failures  int             // attempts failed in a row
	retryAt   time.Time
	lastError string
	closing   bool
	closeCtx  context.Context

	// ctx is the context of every send; shutdown cancels it (at once, or
	// when its own ctx ends).
	ctx    context.Context
	cancel context.CancelFunc

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (ch *channel) setConfig(c *ChannelConfig, s sender) {
	ch.mu.Lock()
	ch.cfg, ch.cfgKey, ch.s = *c, c.key(), s
	ch.failures, ch.retryAt = 0, time.Time{}
	ch.mu.Unlock()
	ch.br.Reset()
	ch.signal()
}

func (ch *channel) signal() {
	select {
	case ch.wake <- struct{}{}:
	default:
	}
}

func (ch *channel) count(result string) {
	switch result {
	case resultSuccess:
		ch.counters[0].Inc()
	case resultFailure:
		ch.counters[1].Inc()
	case resultDropped:
		ch.counters[2].Inc()
	}
}

// add queues nt, coalescing with what is queued for the same alert.
func (ch *channel) add(nt note) {
	fp := nt.alert.Fingerprint
	key := fp
	if nt.reason == EventAcknowledged {
		key = fp + "/ack"
	}
	now := time.Now()
	ch.mu.Lock()
	defer ch.signal()
	defer ch.mu.Unlock()
	if ch.closing {
		return
	}
	queued := now
	if nt.reason == EventResolved {
		// Everything queued for the alert is overtaken by its resolve.
		ch.items = slices.DeleteFunc(ch.items, func(it *item) bool {
			if it.alert.Fingerprint == fp {
				if it.queued.Before(queued) {
					queued = it.queued
				}
				return true
			}
			return false
		})
		if !ch.attempted[fp] {
			// No trigger left this channel: there is nothing to resolve
			// (it fired and resolved within the group wait).
			return
		}
		delete(ch.attempted, fp)
	} else if i := slices.IndexFunc(ch.items, func(it *item) bool { return it.key == key }); i >= 0 {
		ch.items[i] = &item{note: nt, key: key, queued: ch.items[i].queued}
		return
	}
	if len(ch.items) >= ch.n.opts.QueueLimit {
		ch.evictLocked()
	}
	ch.items = append(ch.items, &item{note: nt, key: key, queued: queued})
	slices.SortStableFunc(ch.items, func(a, b *item) int { return a.queued.Compare(b.queued) })
}

// evictLocked drops one notification to make room: the oldest that is not
// a resolve, else the oldest.
func (ch *channel) evictLocked() {
	i := slices.IndexFunc(ch.items, func(it *item) bool { return it.reason != EventResolved })
	if i < 0 {
		i = 0
	}
	it := ch.items[i]
	ch.items = slices.Delete(ch.items, i, i+1)
	ch.count(resultDropped)
	ch.n.e.log.Error("alert notification dropped: the channel's queue is full", "channel", ch.cfg.Name, "rule", it.alert.Name,
		"reason", it.reason, "queueLimit", ch.n.opts.QueueLimit)
}

// shutdown stops the sender. With a ctx, it first lets it deliver what is
// queued (group waits and backoffs skipped) until ctx ends; what is left
// is counted as dropped.
func (ch *channel) shutdown(ctx context.Context) {
	ch.once.Do(func() {
		ch.mu.Lock()
		ch.closing = true
		ch.closeCtx = ctx
		ch.mu.Unlock()
		if ctx == nil {
			ch.cancel()
		} else {
			stop := context.AfterFunc(ctx, ch.cancel)
			defer stop()
		}
		defer ch.cancel()
		close(ch.stop)
		<-ch.done
		ch.mu.Lock()
		for _, it := range ch.items {
			ch.count(resultDropped)
			ch.n.e.log.Warn("alert notification dropped at shutdown", "channel", ch.cfg.Name, "rule", it.alert.Name, "reason", it.reason)
		}
		ch.items = nil
		ch.mu.Unlock()
	})
}

// backoff is the wait after n failures in a row: RetryBase·2^(n-1), at
// most RetryMax, jittered down by up to half.
func (ch *channel) backoff(n int) time.Duration {
	o := &ch.n.opts
	d := o.RetryBase
	for i := 1; i < n && d < o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, o.RetryMax)
	return d/2 + time.Duration(o.Rand()*float64(d/2))
}

func (ch *channel) run() {
	defer close(ch.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ch.mu.Lock()
		closing, ctx := ch.closing, ch.closeCtx
		if closing && (ctx == nil || ctx.Err() != nil || len(ch.items) == 0) {
			ch.mu.Unlock()
			return
		}
		var wait time.Duration = -1
		if len(ch.items) > 0 {
			at := ch.items[0].queued.Add(ch.groupWait)
			if ch.retryAt.After(at) {
				at = ch.retryAt
			}
			if closing && !ch.retryAt.After(time.Now()) {
				at = time.Time{} // no group wait at shutdown; backoffs still hold
			}
			wait = max(time.Until(at), 0)
		}
		ch.mu.Unlock()
		if wait != 0 {
			if wait < 0 {
				wait = time.Hour
			}
			timer.Reset(wait)
			select {
			case <-ch.wake:
			case <-timer.C:
			case <-ch.stop:
			case <-ctxDone(ctx):
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		ch.attempt()
	}
}

func ctxDone(ctx context.Context) <-chan struct{} {
	if ctx == nil {
		return nil
	}
	return ctx.Done()
}

// attempt sends what is queued once.
func (ch *channel) attempt() {
	ch.mu.Lock()
	batch := slices.Clone(ch.items[:min(len(ch.items), ch.n.opts.MaxBatch)])
	s := ch.s
	for _, it := range batch {
		if it.reason != EventResolved {
			ch.attempted[it.alert.Fingerprint] = true
		}
	}
	ch.mu.Unlock()

	t, err := ch.br.Allow()
	if err != nil {
		var oe *breaker.OpenError
		wait := ch.n.opts.RetryBase
		if errors.As(err, &oe) {
			wait = max(oe.RetryAfter, time.Millisecond)
		}
		ch.mu.Lock()
		ch.retryAt = time.Now().Add(wait)
		ch.mu.Unlock()
		return
	}
	m := ch.n.message(ch.cfg.Name, batch)
	ctx, cancel := context.WithTimeout(ch.ctx, ch.n.opts.SendTimeout)
	err = s.send(ctx, m)
	cancel()
	err = cleanError(err)

	var perm *permanentError
	ch.mu.Lock()
	defer ch.mu.Unlock()
	switch {
	case err == nil:
		t.Success()
		ch.count(resultSuccess)
		ch.removeLocked(batch)
		ch.failures, ch.retryAt, ch.lastError = 0, time.Time{}, ""
	case ch.ctx.Err() != nil:
		t.Ignore() // stopped mid-send: says nothing about the receiver
	case errors.As(err, &perm):
		t.Success() // the receiver answered: it is up
		ch.count(resultFailure)
		ch.removeLocked(batch)
		ch.lastError = err.Error()
		ch.n.e.log.Error("alert notification refused by the receiver; not retried", "channel", ch.cfg.Name, "alerts", len(batch), "err", err)
	default:
		t.Failure(errorClass(err))
		ch.count(resultFailure)
		ch.failures++
		d := ch.backoff(ch.failures)
		ch.retryAt = time.Now().Add(d)
		ch.lastError = err.Error()
		ch.n.e.log.Warn("alert notification failed; will retry", "channel", ch.cfg.Name, "alerts", len(batch),
			"attempt", ch.failures, "retryIn", d.Round(time.Millisecond).String(), "err", err)
	}
}

// removeLocked removes the items of batch that were not replaced since.
func (ch *channel) removeLocked(batch []*item) {
	ch.items = slices.DeleteFunc(ch.items, func(it *item) bool { return slices.Contains(batch, it) })
}

func (n *notifier) message(channel string, batch []*item) *message {
	m := &message{channel: channel, instance: n.e.cfg.Instance, cluster: n.e.cfg.Cluster, extURL: n.e.cfg.ExternalURL}
	for _, it := range batch {
		m.alerts = append(m.alerts, it.alert)
		m.reasons = append(m.reasons, it.reason)
	}
	return m
}

func (ch *channel) view() ChannelView {
	ch.mu.Lock()
	v := ch.cfg.view()
	v.Queued = len(ch.items)
	lastErr, failures := ch.lastError, ch.failures
	ch.mu.Unlock()
	v.Breaker = ch.br.State().String()
	v.Counts = map[string]any{
		"success": ch.counters[0].Get(), "failure": ch.counters[1].Get(), "dropped": ch.counters[2].Get(),
		"failuresInARow": failures,
	}
	if lastErr != "" {
		v.Counts["lastError"] = lastErr
	}
	return v
}

// ChannelNames lists the configured channels, sorted.
func (e *Engine) ChannelNames() []string { return e.notifier.names() }

// Channels lists the notification channels, secrets redacted.
func (e *Engine) Channels() []ChannelView { return e.notifier.views() }

// testMessage is the message of a test notification on channel c.
func testMessage(c *ChannelConfig, now time.Time, instance, cluster, extURL, by string) *message {
	labels := map[string]string{"alertname": "sockmon_test", "severity": string(LevelInfo), "instance": instance}
	a := Alert{Name: "sockmon_test", Fingerprint: fingerprint("sockmon_test", labels), State: StateFiring, Level: LevelInfo,
		Metric: "test", Operator: ">", Labels: labels, StartsAt: now, Since: now,
		Annotations: map[string]string{"summary": "test notification from sockmon on " + instance + ", sent by " + by,
			"description": "An operator checked this channel's wiring; no alert is firing."}}
	if c.Type == TypeAlertmanager {
		a.EndsAt = now.Add(5 * time.Minute)
	}
	return &message{channel: c.Name, alerts: []Alert{a}, reasons: []string{"test"}, test: true, instance: instance, cluster: cluster, extURL: extURL}
}

// SendTest sends a test notification on the channel c without an engine
// (sockmon alerts test): one attempt within timeout. instance names the
// node (default the host name) and by the operator.
func SendTest(ctx context.Context, c ChannelConfig, instance, by string, timeout time.Duration) error {
	if err := c.validate(fmt.Sprintf("channel %q: ", c.Name)); err != nil {
		return err
	}
	o := NotifyOptions{SendTimeout: timeout}
	o.setDefaults()
	n := &notifier{opts: o}
	if instance == "" {
		instance, _ = os.Hostname()
	}
	ctx, cancel := context.WithTimeout(ctx, o.SendTimeout)
	defer cancel()
	return cleanError(newSender(n, &c).send(ctx, testMessage(&c, time.Now(), instance, DefaultCluster, "", by)))
}

// ErrNoSuchChannel is returned by Test for a channel that is not
// configured.
var ErrNoSuchChannel = errors.New("alerts: no such channel")

// Test sends a test notification to the channel now, outside its queue
// and breaker (one attempt, SendTimeout), and reports the outcome; it is
// counted in the channel's metrics like any attempt.
func (e *Engine) Test(ctx context.Context, channel, by string) error {
	ch := e.notifier.get(channel)
	if ch == nil {
		return fmt.Errorf("%w: %q; configured: %v", ErrNoSuchChannel, channel, e.notifier.names())
	}
	m := testMessage(&ch.cfg, e.now(), e.cfg.Instance, e.cfg.Cluster, e.cfg.ExternalURL, by)
	ch.mu.Lock()
	s := ch.s
	ch.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Notify.SendTimeout)
	defer cancel()
	err := cleanError(s.send(ctx, m))
	if err != nil {
		ch.count(resultFailure)
		e.log.Warn("test notification failed", "channel", channel, "by", by, "err", err)
		return err
	}
	ch.count(resultSuccess)
	e.log.Info("test notification sent", "channel", channel, "by", by)
	return nil
}
