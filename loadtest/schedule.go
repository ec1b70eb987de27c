package loadtest

import "time"

// pacer is the open-model schedule of one shard of sessions. Intended send
// times are t_k = start + k*gap, dealt round robin over the members, so each
// member's own sends are len(members)*gap apart and the shard as a whole runs
// at exactly 1/gap messages per second however the server behaves.
//
// A pacer is owned by one goroutine; it is not safe for concurrent use.
type pacer struct {
	start   time.Duration
	gap     float64 // nanoseconds between consecutive intended sends
	k       int64
	members []*session
}

// newPacer schedules rate messages per second over members, the first one
// intended at start. It panics when members is empty or rate is not positive.
func newPacer(members []*session, rate float64, start time.Duration) *pacer {
	if len(members) == 0 || rate <= 0 {
		panic("loadtest: newPacer needs members and a positive rate")
	}
	p := &pacer{start: start, gap: float64(time.Second) / rate, members: members}
	for _, s := range members {
		s.interval = p.memberInterval()
	}
	return p
}

// memberInterval is the time between two intended sends of one member.
func (p *pacer) memberInterval() time.Duration {
	return time.Duration(p.gap * float64(len(p.members)))
}

// next returns the intended time of the next send.
func (p *pacer) next() time.Duration {
	return p.start + time.Duration(float64(p.k)*p.gap)
}

// fire calls send, in schedule order, for every send whose intended time is
// at or before now, and returns the intended time of the next one. send runs
// on the caller's goroutine and must not block for long: a slow send delays
// the later ones, and their delay is then charged to latency, as it should be.
func (p *pacer) fire(now time.Duration, send func(s *session, intended time.Duration)) time.Duration {
	for {
		t := p.next()
		if t > now {
			return t
		}
		send(p.members[p.k%int64(len(p.members))], t)
		p.k++
	}
}

// shardPacers splits sessions into n pacers that together run at rate
// messages per second; pacer j starts j/rate after start so the shards
// interleave instead of firing together.
func shardPacers(sessions []*session, n int, rate float64, start time.Duration) []*pacer {
	if n > len(sessions) {
		n = len(sessions)
	}
	out := make([]*pacer, 0, n)
	for j := 0; j < n; j++ {
		var members []*session
		for i := j; i < len(sessions); i += n {
			members = append(members, sessions[i])
		}
		offset := time.Duration(float64(j) * float64(time.Second) / rate)
		out = append(out, newPacer(members, rate/float64(n), start+offset))
	}
	return out
}
