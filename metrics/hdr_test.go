package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// TestFlatIndexMatchesHdrhistogram checks the hot-path index arithmetic
// against hdrhistogram-go itself: recording v there sets exactly counts[idx].
func TestFlatIndexMatchesHdrhistogram(t *testing.T) {
	h := hdrhistogram.New(hdrLowest, hdrHighest, hdrSigDigits)
	if n := len(h.Export().Counts); n != countsLen {
		t.Fatalf("hdrhistogram-go has %d counts, the recorder %d", n, countsLen)
	}
	values := []uint64{0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 999_999, 1_000_000, 59_999_999, maxMicros}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		values = append(values, uint64(math.Exp(r.Float64()*math.Log(maxMicros))))
	}
	for _, v := range values {
		h.Reset()
		if err := h.RecordValue(int64(v)); err != nil {
			t.Fatalf("RecordValue(%d): %v", v, err)
		}
		counts := h.Export().Counts
		want := slices.Index(counts, 1)
		if got := flatIndex(v); int(got) != want {
			t.Fatalf("flatIndex(%d) = %d, hdrhistogram-go uses %d", v, got, want)
		}
		idx := flatIndex(v)
		if lo, hi := valueAt(idx), upperEdge(idx); v < lo || v >= hi {
			t.Fatalf("value %d outside [%d, %d) of its index %d", v, lo, hi, idx)
		}
		if flatIndex(valueAt(idx)) != idx {
			t.Fatalf("valueAt(%d) = %d maps to another index", idx, valueAt(idx))
		}
	}
}

func TestMicros(t *testing.T) {
	tests := []struct {
		ns   int64
		want uint64
	}{
		{-5, 0}, {0, 0}, {1, 0}, {1000, 0}, {1001, 1}, {2000, 1}, {2001, 2},
		{int64(time.Minute), maxMicros - 1}, {int64(time.Hour), maxMicros},
	}
	for _, tt := range tests {
		if got := micros(tt.ns); got != tt.want {
			t.Errorf("micros(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
}

// TestPromBucketsAreHDREdges checks that each `le` bound is the lower edge of
// an HDR sub-bucket, which is what makes the bucket counts exact.
func TestPromBucketsAreHDREdges(t *testing.T) {
	for i, us := range promBucketsMicros {
		idx := flatIndex(us)
		if valueAt(idx) != us {
			t.Errorf("le %v µs is inside sub-bucket [%d, %d)", us, valueAt(idx), upperEdge(idx))
		}
		if i > 0 && promBuckets[i] <= promBuckets[i-1] {
			t.Errorf("bounds not ascending at %d", i)
		}
	}
}

// distributions of latencies in nanoseconds.
var distributions = []struct {
	name string
	gen  func(r *rand.Rand) int64
}{
	{"uniform 1µs-10ms", func(r *rand.Rand) int64 { return 1000 + r.Int64N(10_000_000) }},
	{"bimodal 50µs and 20ms", func(r *rand.Rand) int64 {
		if r.IntN(10) < 8 {
			return int64(50_000 + r.NormFloat64()*5_000)
		}
		return int64(20_000_000 + r.NormFloat64()*2_000_000)
	}},
	{"heavy tail (Pareto)", func(r *rand.Rand) int64 {
		return int64(20_000 / math.Pow(1-r.Float64(), 1/1.2)) // x_min 20 µs, alpha 1.2
	}},
	{"sub-microsecond", func(r *rand.Rand) int64 { return r.Int64N(3000) }},
}

// exactQuantile returns the raw value at the rank hdrhistogram-go uses.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int64(q*float64(len(sorted)) + 0.5)
	rank = max(1, min(rank, int64(len(sorted))))
	return sorted[rank-1]
}

func TestQuantileAccuracy(t *testing.T) {
	for _, d := range distributions {
		t.Run(d.name, func(t *testing.T) {
			m, _ := newTestMetrics(t, Options{Shards: 4})
			r := rand.New(rand.NewPCG(7, 11))
			raw := make([]int64, 200_000)
			for i := range raw {
				v := max(d.gen(r), 0)
				raw[i] = v
				m.Shard(uint64(i)).ObserveMessage(KindEcho, time.Duration(v))
			}
			slices.Sort(raw)
			s := m.Snapshot()
			l := s.Kinds[KindEcho].Latency
			if l.Count != uint64(len(raw)) {
				t.Fatalf("count %d, recorded %d", l.Count, len(raw))
			}
			var sum float64
			for _, v := range raw {
				sum += float64(v)
			}
			if want := sum / float64(len(raw)) / 1e6; math.Abs(l.AvgMs-want) > 1e-9*want {
				t.Errorf("avg %v ms, exact %v ms", l.AvgMs, want)
			}
			checks := []struct {
				q   float64
				got float64
			}{{0.5, l.P50Ms}, {0.95, l.P95Ms}, {0.99, l.P99Ms}, {0.999, l.P999Ms}, {1, l.MaxMs}}
			for _, c := range checks {
				exact := float64(exactQuantile(raw, c.q)) / 1e6
				// HDR with 3 significant digits: within 0.1 %, or 1 µs
				// (the resolution) for values below 1 ms.
				tol := max(exact*1e-3, 1e-3)
				if math.Abs(c.got-exact) > tol {
					t.Errorf("q%v: got %v ms, exact %v ms (tolerance %v)", c.q, c.got, exact, tol)
				}
				if c.got < exact {
					t.Errorf("q%v: got %v ms below the exact %v ms: the upper edge must bound it", c.q, c.got, exact)
				}
			}
		})
	}
}

func TestCountsAddSubReset(t *testing.T) {
	var a, b counts
	b.block(0)[5] = 3
	b.block(16)[7] = 2
	b.n, b.sum = 5, 100
	a.add(&b)
	a.add(&b)
	a.sub(&b)
	if a.blocks[0][5] != 3 || a.blocks[16][7] != 2 || a.n != 5 || a.sum != 100 {
		t.Fatalf("add/sub: got %+v", a)
	}
	if got := a.countBelow(flatIndex(6)); got != 3 {
		t.Errorf("countBelow(6µs) = %d, want 3", got)
	}
	a.reset()
	if a.n != 0 || a.sum != 0 || a.blocks[0][5] != 0 || a.blocks[0] == nil {
		t.Errorf("reset must zero counts and keep blocks: %+v", a)
	}
}

func TestCumulativeMatchesCountBelow(t *testing.T) {
	var c counts
	r := rand.New(rand.NewPCG(3, 4))
	for range 10_000 {
		v := uint64(math.Exp(r.Float64() * math.Log(maxMicros)))
		idx := flatIndex(v)
		c.block(int(idx >> subBits))[idx&blockMask]++
		c.n++
	}
	out := make([]uint64, len(promBuckets))
	c.cumulative(promBuckets, out)
	for i, idx := range promBuckets {
		if want := c.countBelow(idx); out[i] != want {
			t.Errorf("bucket %d: cumulative %d, countBelow %d", i, out[i], want)
		}
	}
}

func TestLatencyEmpty(t *testing.T) {
	if l := newQuantiler().latency(&counts{}); l != (Latency{}) {
		t.Errorf("empty latency = %+v, want zero", l)
	}
}

func TestMaxMatchesHdrhistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	q := newQuantiler()
	for range 200 {
		var c counts
		for range 1 + r.IntN(50) {
			v := uint64(math.Exp(r.Float64() * math.Log(maxMicros)))
			idx := flatIndex(v)
			c.block(int(idx >> subBits))[idx&blockMask]++
			c.n++
		}
		q.load(&c)
		if got, want := q.latency(&c).MaxMs, edgeMs(q.h.Max()); got != want {
			t.Fatalf("max %v ms, hdrhistogram-go says %v ms", got, want)
		}
	}
}

// countBelow returns how many values are counted at flat indexes below idx:
// the obvious reference for counts.cumulative.
func (c *counts) countBelow(idx uint) uint64 {
	var n uint64
	for b := uint(0); b < numBlocks && b<<subBits < idx; b++ {
		cb := c.blocks[b]
		if cb == nil {
			continue
		}
		end := uint(blockLen)
		if idx-b<<subBits < end {
			end = idx - b<<subBits
		}
		for _, v := range cb[:end] {
			n += v
		}
	}
	return n
}
