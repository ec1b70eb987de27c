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

// loopPacers splits the schedule of senders over the event loops that serve
// them (session id modulo loops): pacer j, nil when loop j serves no sender,
// runs at rate times loop j's share of the senders, and the pacers start
// 1/rate apart after start so that they interleave instead of firing
// together.
func loopPacers(senders []*session, loops int, rate float64, start time.Duration) []*pacer {
	groups := make([][]*session, loops)
	for _, s := range senders {
		i := s.id % loops
		groups[i] = append(groups[i], s)
	}
	out := make([]*pacer, loops)
	k := 0
	for j, g := range groups {
		if len(g) == 0 {
			continue
		}
		offset := time.Duration(float64(k) * float64(time.Second) / rate)
		out[j] = newPacer(g, rate*float64(len(g))/float64(len(senders)), start+offset)
		k++
	}
	return out
}
