// Package metrics is sockmon's metrics core: lock-free sharded HDR latency
// recording, counters and gauges, rolling windows, a history at falling
// resolution, process statistics and the Prometheus exposition. It imports
// nothing else of sockmon; netcore records into it on every message and the
// control side reads from it.
//
// # Recording: shards
//
// A Metrics owns a power-of-two number of Shards (four per GOMAXPROCS by
// default). netcore picks the shard of a connection once, with
// Metrics.Shard(connID), and records through it: netpoll runs a connection's
// handler on one goroutine at a time, and spreading connections over more
// shards than Ps keeps two running handlers off the same cache lines. A
// recording is a few uncontended atomic adds on memory of that shard: no
// lock, no map, no allocation. Two goroutines that do share a shard stay
// correct (every update is atomic); they only share cache lines.
//
// Each latency histogram of a shard has the bucket layout of an
// hdrhistogram-go Histogram (1 µs to 60 s, 3 significant digits) as blocks
// of 1024 atomic 32-bit counts allocated on first use, plus the exact sum of
// the durations. See hdr.go for the index arithmetic.
//
// # Reading: deltas instead of interval swaps
//
// Writers never reset or swap anything. Counts only grow; a reader (a
// scrape, a Snapshot, the sampler) merges the shards with atomic loads and
// subtracts what it saw at its previous collect, modulo 2^32. That delta is
// added to the since-start totals (which feed the Prometheus histograms),
// to the current chunk of each rolling window and to the history interval.
// Because nothing is ever swapped there is no phase a writer has to wait
// for or can race with: readers never block writers and no value recorded
// can be lost between intervals. Readers serialise among themselves on one
// mutex that writers never touch; quantiles come from merging the counts
// into an hdrhistogram-go Histogram that the readers reuse.
//
// # Time
//
// Latencies are measured by the caller with Shard.Nanotime (or
// Metrics.Nanotime): monotonic nanoseconds since the Metrics was created,
// from time.Since on a base time, which reads only the monotonic clock and
// costs about half of time.Now. Take one reading before handling a message
// and one after; when a handler processes messages back to back, the
// reading that ends one message starts the next. Windows, history and rates
// use Options.Now instead, which tests replace with a fake clock and drive
// with Sample.
//
// # Lifecycle
//
// New registers every series at zero; Start runs the sampling goroutine
// (every Options.HistoryInterval) and Close stops it and waits for it.
package metrics
