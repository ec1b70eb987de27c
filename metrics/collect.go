package metrics

// The collector turns the shards' ever-growing counts into deltas. Writers
// never reset anything: a count only grows (32-bit latency counts wrap, which
// is harmless because the reader subtracts modulo 2^32), so there is no
// interval swap a writer could race with and nothing recorded can be lost.
// Each collect merges the shards block by block with atomic loads, subtracts
// what it saw last time and hands the difference to the since-start totals,
// the rolling windows and the history. It runs under Metrics.mu, which only
// readers take.
//
// A 32-bit count wraps after 2^32 increments; the delta stays exact as long
// as no single sub-bucket gets 2^32 more values between two collects, which
// the sampler (a collect every HistoryInterval, at most one minute) makes
// impossible in practice.

// tally is the sharded counters summed over the shards.
type tally struct {
	received      uint64
	sent          uint64
	bytesReceived uint64
	bytesSent     uint64
	dropped       uint64
	errors        [numErrorCodes]uint64
	rateLimited   [numScopes]uint64
}

func (t *tally) add(o *tally) {
	t.received += o.received
	t.sent += o.sent
	t.bytesReceived += o.bytesReceived
	t.bytesSent += o.bytesSent
	t.dropped += o.dropped
	for i := range t.errors {
		t.errors[i] += o.errors[i]
	}
	for i := range t.rateLimited {
		t.rateLimited[i] += o.rateLimited[i]
	}
}

func (t *tally) sub(o *tally) {
	t.received -= o.received
	t.sent -= o.sent
	t.bytesReceived -= o.bytesReceived
	t.bytesSent -= o.bytesSent
	t.dropped -= o.dropped
	for i := range t.errors {
		t.errors[i] -= o.errors[i]
	}
	for i := range t.rateLimited {
		t.rateLimited[i] -= o.rateLimited[i]
	}
}

// errorsTotal is the number of error replies of all codes.
func (t *tally) errorsTotal() uint64 {
	var n uint64
	for _, v := range t.errors {
		n += v
	}
	return n
}

// sumShards reads the counters of all shards.
func sumShards(shards []*Shard) tally {
	var t tally
	for _, s := range shards {
		t.received += s.received.Load()
		t.sent += s.sent.Load()
		t.bytesReceived += s.bytesReceived.Load()
		t.bytesSent += s.bytesSent.Load()
		t.dropped += s.dropped.Load()
		for i := range t.errors {
			t.errors[i] += s.errors[i].Load()
		}
		for i := range t.rateLimited {
			t.rateLimited[i] += s.rateLimited[i].Load()
		}
	}
	return t
}

// slice is what happened during some stretch of time: the latency of all
// message kinds together and the counter increments.
type slice struct {
	msgs  counts
	tally tally
}

func (s *slice) add(o *slice) {
	s.msgs.add(&o.msgs)
	s.tally.add(&o.tally)
}

func (s *slice) sub(o *slice) {
	s.msgs.sub(&o.msgs)
	s.tally.sub(&o.tally)
}

func (s *slice) reset() {
	s.msgs.reset()
	s.tally = tally{}
}

// recPrev is what the collector saw of one recorder at the last collect.
type recPrev struct {
	blocks [numBlocks]*[blockLen]uint32
	sum    uint64
}

type collector struct {
	shards []*Shard

	prev      [numRecorders]recPrev
	prevTally tally

	// total holds each recorder since start: the message kinds, then the
	// handshake. It feeds the Prometheus histograms.
	total [numRecorders]counts

	delta  slice            // the result of the last collect
	merged [blockLen]uint32 // scratch
}

// collect reads the shards and returns what was recorded since the last
// collect. The returned slice is valid until the next collect.
func (c *collector) collect() *slice {
	c.delta.msgs.reset()
	for r := range c.total {
		var dst *counts
		if r < int(numKinds) {
			dst = &c.delta.msgs
		}
		c.collectRecorder(r, dst)
	}
	cur := sumShards(c.shards)
	c.delta.tally = cur
	c.delta.tally.sub(&c.prevTally)
	c.prevTally = cur
	return &c.delta
}

// collectRecorder adds the growth of recorder r to its total and to dst
// (when not nil).
func (c *collector) collectRecorder(r int, dst *counts) {
	p := &c.prev[r]
	total := &c.total[r]

	var sum uint64
	for _, s := range c.shards {
		sum += s.rec[r].sum.Load()
	}
	dsum := sum - p.sum
	p.sum = sum
	total.sum += dsum

	var n uint64
	for b := range numBlocks {
		seen := false
		for _, s := range c.shards {
			blk := s.rec[r].blocks[b].Load()
			if blk == nil {
				continue
			}
			if !seen {
				for i := range blk {
					c.merged[i] = blk[i].Load()
				}
				seen = true
				continue
			}
			for i := range blk {
				c.merged[i] += blk[i].Load()
			}
		}
		if !seen {
			continue
		}
		pb := p.blocks[b]
		if pb == nil {
			pb = new([blockLen]uint32)
			p.blocks[b] = pb
		}
		var tb, db *[blockLen]uint64
		for i, v := range c.merged {
			d := v - pb[i]
			if d == 0 {
				continue
			}
			pb[i] = v
			if tb == nil {
				tb = total.block(b)
				if dst != nil {
					db = dst.block(b)
				}
			}
			tb[i] += uint64(d)
			if db != nil {
				db[i] += uint64(d)
			}
			n += uint64(d)
		}
	}
	total.n += n
	if dst != nil {
		dst.n += n
		dst.sum += dsum
	}
}
