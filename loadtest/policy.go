package loadtest

import (
	"fmt"
	"strconv"
	"strings"
)

// The server's policy as this client meets it. Servers limit new
// connections per address and messages per connection, and ban an address
// that keeps going over (sockmon serve does, by default); a load run from one
// machine meets those limits long before the server's capacity. The progress
// line, the report and the exit status say so in words, rather than leave it
// to the error classes.

// policyAdvice is what to do when the server rate-limits a load run.
const policyAdvice = "for capacity runs start it with --message-rate 0 --conn-rate 0, or spread dials with --sources"

// policyCounts are the refusals and closes by the server's policy, read from
// the errors by class.
type policyCounts struct {
	refused     int64 // upgrades answered with an HTTP status instead of 101 (handshake_<status>)
	tooMany     int64 // of those, 429: the connection rate per address, or a ban
	rateLimited int64 // error replies with code rate_limited
	closed      int64 // connections closed with 1008 (policy: rate-limit abuse, bans)
}

func countPolicy(byClass map[string]int64) policyCounts {
	var p policyCounts
	for class, n := range byClass {
		if status, ok := strings.CutPrefix(class, ErrClassHandshake+"_"); ok {
			if code, err := strconv.Atoi(status); err == nil {
				p.refused += n
				if code == 429 {
					p.tooMany += n
				}
			}
		}
	}
	p.rateLimited = byClass[ErrClassServerError+"_rate_limited"]
	p.closed = byClass[classWithCode(ErrClassClose, 1008)]
	return p
}

// limited reports whether the server rate-limited this client at all.
func (p policyCounts) limited() bool { return p.tooMany+p.rateLimited+p.closed > 0 }

// warning says in words that the server is rate-limiting this client, with
// the counts and what to do; "" when it is not.
func (p policyCounts) warning() string {
	if !p.limited() {
		return ""
	}
	var what []string
	if p.tooMany > 0 {
		what = append(what, fmt.Sprintf("%d upgrades refused with 429", p.tooMany))
	}
	if p.rateLimited > 0 {
		what = append(what, fmt.Sprintf("%d messages answered rate_limited", p.rateLimited))
	}
	if p.closed > 0 {
		what = append(what, fmt.Sprintf("%d connections closed with 1008", p.closed))
	}
	return "the server is rate-limiting this client (" + strings.Join(what, ", ") + "): " + policyAdvice
}

// RefusedByPolicy reports whether most connections were refused at the
// upgrade (an HTTP status instead of 101) or closed by the server's policy
// (1008): the figures then describe the server's limits, not its capacity,
// and `sockmon load` exits with ExitRefused whatever the SLOs say.
func (rep *Report) RefusedByPolicy() bool {
	p := countPolicy(rep.Errors.ByClass)
	return rep.Connections.Attempted > 0 && 2*(p.refused+p.closed) > rep.Connections.Attempted
}

// policyWarnings are the report's warnings about the server's policy.
func (rep *Report) policyWarnings() []string {
	p := countPolicy(rep.Errors.ByClass)
	var out []string
	if w := p.warning(); w != "" {
		out = append(out, w)
	}
	if rep.RefusedByPolicy() {
		out = append(out, fmt.Sprintf("%d of %d connections were refused at the upgrade or closed by the server's policy (1008): exit status %d",
			p.refused+p.closed, rep.Connections.Attempted, ExitRefused))
	}
	return out
}
