package loadtest

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// Error classes as they appear in Report.Errors.ByClass. Handshake refusals
// and close codes get the status or code appended: "handshake_401",
// "close_1009"; server error replies get their code: "server_error_rate_limited".
const (
	ErrClassDial            = "dial"
	ErrClassHandshake       = "handshake"
	ErrClassClose           = "close"
	ErrClassTimeout         = "timeout"
	ErrClassMismatch        = "echo_mismatch"
	ErrClassWrite           = "write"
	ErrClassProtocol        = "protocol"
	ErrClassServerError     = "server_error"
	ErrClassJoin            = "join"
	ErrClassMissingDelivery = "missing_delivery"
)

// counters are the run's totals. Safe for concurrent use.
type counters struct {
	attempts    atomic.Int64 // dials started
	established atomic.Int64 // upgrades completed
	dropped     atomic.Int64 // connections closed by the server or the network during the run
	sent        atomic.Int64 // messages (echo requests or publishes) written
	received    atomic.Int64 // replies matched to a message in flight
	deliveries  atomic.Int64 // publish deliveries received by members
	acks        atomic.Int64 // publish acks
	joined      atomic.Int64 // room joins acknowledged
	pings       atomic.Int64 // server pings answered
	errTotal    atomic.Int64

	mu     sync.Mutex
	errors map[string]int64
}

func (c *counters) addError(class string) {
	c.errTotal.Add(1)
	c.mu.Lock()
	if c.errors == nil {
		c.errors = make(map[string]int64)
	}
	c.errors[class]++
	c.mu.Unlock()
}

func (c *counters) addErrors(class string, n int64) {
	if n <= 0 {
		return
	}
	c.errTotal.Add(n)
	c.mu.Lock()
	if c.errors == nil {
		c.errors = make(map[string]int64)
	}
	c.errors[class] += n
	c.mu.Unlock()
}

func (c *counters) errorsByClass() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.errors))
	for k, v := range c.errors {
		out[k] = v
	}
	return out
}

func classWithCode(class string, code int) string {
	return class + "_" + strconv.Itoa(code)
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
