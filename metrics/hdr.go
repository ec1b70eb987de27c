package metrics

import (
	"math/bits"
	"sync/atomic"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// The latency histograms use the bucket layout of an hdrhistogram-go
// Histogram built with New(1, 60_000_000, 3): values in microseconds from 1 µs
// to 60 s, three significant digits. That geometry has 2048 sub-buckets, of
// which the first HDR bucket uses all and each further bucket the upper 1024,
// so the flat counts index of a value v is
//
//	b   = bits.Len64(v|2047) - 11   // HDR bucket, 0..15
//	idx = b<<10 + v>>b              // flat index, 0..17407
//
// We split the flat array into blocks of 1024 counts (block 0 and 1 are HDR
// bucket 0, block k+1 is HDR bucket k). Blocks are allocated on first use, so
// a histogram only pays for the octaves its latencies actually reach (a few
// KiB instead of 68 KiB per shard).
//
// A duration d in nanoseconds is recorded as v = (d-1)/1000 µs, clamped to
// [0, 60 s]: the count at v covers the durations (v µs, v+1 µs]. This makes
// every sub-bucket boundary an exact "less or equal" boundary for Prometheus
// `le` buckets (see promBuckets), and the reported value of a sub-bucket is
// its upper edge, highestEquivalentValue+1 µs.
const (
	hdrLowest    = 1          // µs
	hdrHighest   = 60_000_000 // µs, 60 s
	hdrSigDigits = 3

	subBits    = 10
	blockLen   = 1 << subBits // counts per block
	blockMask  = blockLen - 1
	numBlocks  = 17 // (HDR bucketCount 16 + 1) * 1024 / blockLen
	countsLen  = numBlocks * blockLen
	maxMicros  = hdrHighest
	nsPerMicro = 1000
)

// micros converts a duration in nanoseconds to the recorded value in µs.
func micros(ns int64) uint64 {
	if ns <= 0 {
		return 0
	}
	v := uint64(ns-1) / nsPerMicro
	if v > maxMicros {
		v = maxMicros
	}
	return v
}

// flatIndex is the hdrhistogram-go counts index of v (µs).
func flatIndex(v uint64) uint {
	b := uint(bits.Len64(v|(2*blockLen-1))) - (subBits + 1)
	return b<<subBits + uint(v>>b)
}

// valueAt is the lowest value (µs) counted at flat index idx.
func valueAt(idx uint) uint64 {
	if idx < 2*blockLen {
		return uint64(idx)
	}
	b := idx>>subBits - 1
	sub := idx&blockMask + blockLen
	return uint64(sub) << b
}

// upperEdge is the exclusive upper edge (µs) of flat index idx: the durations
// counted at idx are in (valueAt(idx) µs, upperEdge(idx) µs].
func upperEdge(idx uint) uint64 {
	if idx < 2*blockLen {
		return uint64(idx) + 1
	}
	b := idx>>subBits - 1
	return valueAt(idx) + 1<<b
}

// block is one block of a recorder: 1024 counts, 32 bits each. A count only
// grows (wrapping modulo 2^32); readers turn it into deltas, see collector.
type block [blockLen]atomic.Uint32

// recorder is the hot-path latency histogram of one shard. Recording is a
// plain atomic add on a count and on the sum: no lock, no allocation except
// the one-time allocation of a block, no map.
type recorder struct {
	sum    atomic.Uint64 // nanoseconds, wraps modulo 2^64
	blocks [numBlocks]atomic.Pointer[block]
}

func (r *recorder) record(ns int64) {
	idx := flatIndex(micros(ns))
	blk := r.blocks[idx>>subBits].Load()
	if blk == nil {
		blk = r.grow(idx >> subBits)
	}
	blk[idx&blockMask].Add(1)
	if ns > 0 {
		r.sum.Add(uint64(ns))
	}
}

// grow installs block b, or returns the block another writer installed first.
func (r *recorder) grow(b uint) *block {
	nb := new(block)
	if r.blocks[b].CompareAndSwap(nil, nb) {
		return nb
	}
	return r.blocks[b].Load()
}

// counts is the reader-side form of a histogram: 64-bit counts in lazily
// allocated blocks, the count and the exact sum of the recorded durations.
// It is not safe for concurrent use; the collector guards it.
type counts struct {
	blocks [numBlocks]*[blockLen]uint64
	n      uint64 // total count
	sum    uint64 // nanoseconds
}

func (c *counts) block(b int) *[blockLen]uint64 {
	if c.blocks[b] == nil {
		c.blocks[b] = new([blockLen]uint64)
	}
	return c.blocks[b]
}

// add adds o to c.
func (c *counts) add(o *counts) {
	for b, ob := range o.blocks {
		if ob == nil {
			continue
		}
		cb := c.block(b)
		for i, v := range ob {
			cb[i] += v
		}
	}
	c.n += o.n
	c.sum += o.sum
}

// sub subtracts o from c; o must be part of what was added to c.
func (c *counts) sub(o *counts) {
	for b, ob := range o.blocks {
		if ob == nil {
			continue
		}
		cb := c.blocks[b]
		for i, v := range ob {
			cb[i] -= v
		}
	}
	c.n -= o.n
	c.sum -= o.sum
}

// reset zeroes c and keeps its blocks for reuse, so memory stays bounded by
// the octaves ever touched.
func (c *counts) reset() {
	for _, cb := range c.blocks {
		if cb != nil {
			*cb = [blockLen]uint64{}
		}
	}
	c.n, c.sum = 0, 0
}

// Latency is a summary of a latency distribution, in milliseconds as the
// JSON contract of the control side uses them. Quantiles and Max are exact
// with respect to the HDR data: each is the upper edge of the sub-bucket
// holding the value, so it is at most 0.1 % (or 1 µs) above the true value.
// Avg is exact.
type Latency struct {
	Count  uint64  `json:"count"`
	AvgMs  float64 `json:"avgMs"`
	P50Ms  float64 `json:"p50Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

// quantiler merges counts into an hdrhistogram-go Histogram to read
// quantiles. It reuses one Histogram and is not safe for concurrent use.
type quantiler struct {
	h *hdrhistogram.Histogram
}

func newQuantiler() *quantiler {
	return &quantiler{h: hdrhistogram.New(hdrLowest, hdrHighest, hdrSigDigits)}
}

// load replaces the histogram's content with c.
func (q *quantiler) load(c *counts) {
	q.h.Reset()
	for b, cb := range c.blocks {
		if cb == nil {
			continue
		}
		for i, v := range cb {
			if v != 0 {
				// The value is in range and v > 0, so this cannot fail.
				_ = q.h.RecordValues(int64(valueAt(uint(b<<subBits+i))), int64(v))
			}
		}
	}
}

// edgeMs converts an HDR value (the highest equivalent value of a
// sub-bucket, in µs) to the upper edge of that sub-bucket in milliseconds.
func edgeMs(v int64) float64 {
	return float64(v+1) / 1e3
}

// latency summarises c.
func (q *quantiler) latency(c *counts) Latency {
	l := Latency{Count: c.n}
	if c.n == 0 {
		return l
	}
	q.load(c)
	l.AvgMs = float64(c.sum) / float64(c.n) / 1e6
	l.P50Ms = edgeMs(q.h.ValueAtQuantile(50))
	l.P95Ms = edgeMs(q.h.ValueAtQuantile(95))
	l.P99Ms = edgeMs(q.h.ValueAtQuantile(99))
	l.P999Ms = edgeMs(q.h.ValueAtQuantile(99.9))
	l.MaxMs = float64(upperEdge(c.maxIndex())) / 1e3
	return l
}

// maxIndex returns the highest flat index with a count; 0 when c is empty.
// Its upper edge is what hdrhistogram-go's Max reports, plus 1 µs, without
// Max's walk over every sub-bucket.
func (c *counts) maxIndex() uint {
	for b := numBlocks - 1; b >= 0; b-- {
		cb := c.blocks[b]
		if cb == nil {
			continue
		}
		for i := blockLen - 1; i >= 0; i-- {
			if cb[i] != 0 {
				return uint(b<<subBits + i)
			}
		}
	}
	return 0
}
