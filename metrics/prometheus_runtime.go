package metrics

import (
	"io"
	"runtime"
	"slices"
	"strconv"
)

// The go_* and process_* families, with the names and meaning of
// client_golang's Go and process collectors so that stock dashboards work.
// process_open_fds is left out on purpose: counting descriptors lists
// /proc/self/fd, which grows with the number of connections, and a scrape
// must not.

type runtimeMetric struct {
	name, typ, help string
	value           func(ms *runtime.MemStats) float64
}

var memStatsMetrics = []runtimeMetric{
	{"go_memstats_alloc_bytes", typeGauge, "Bytes of allocated heap objects.", func(ms *runtime.MemStats) float64 { return float64(ms.Alloc) }},
	{"go_memstats_alloc_bytes_total", typeCounter, "Bytes allocated in the heap, freed or not.", func(ms *runtime.MemStats) float64 { return float64(ms.TotalAlloc) }},
	{"go_memstats_sys_bytes", typeGauge, "Bytes of memory obtained from the OS.", func(ms *runtime.MemStats) float64 { return float64(ms.Sys) }},
	{"go_memstats_mallocs_total", typeCounter, "Heap objects allocated.", func(ms *runtime.MemStats) float64 { return float64(ms.Mallocs) }},
	{"go_memstats_frees_total", typeCounter, "Heap objects freed.", func(ms *runtime.MemStats) float64 { return float64(ms.Frees) }},
	{"go_memstats_heap_alloc_bytes", typeGauge, "Bytes of allocated heap objects.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapAlloc) }},
	{"go_memstats_heap_sys_bytes", typeGauge, "Bytes of heap memory obtained from the OS.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapSys) }},
	{"go_memstats_heap_idle_bytes", typeGauge, "Bytes in idle (unused) heap spans.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapIdle) }},
	{"go_memstats_heap_inuse_bytes", typeGauge, "Bytes in in-use heap spans.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapInuse) }},
	{"go_memstats_heap_released_bytes", typeGauge, "Bytes of physical memory returned to the OS.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapReleased) }},
	{"go_memstats_heap_objects", typeGauge, "Allocated heap objects.", func(ms *runtime.MemStats) float64 { return float64(ms.HeapObjects) }},
	{"go_memstats_stack_inuse_bytes", typeGauge, "Bytes in stack spans.", func(ms *runtime.MemStats) float64 { return float64(ms.StackInuse) }},
	{"go_memstats_stack_sys_bytes", typeGauge, "Bytes of stack memory obtained from the OS.", func(ms *runtime.MemStats) float64 { return float64(ms.StackSys) }},
	{"go_memstats_gc_sys_bytes", typeGauge, "Bytes of memory in garbage collection metadata.", func(ms *runtime.MemStats) float64 { return float64(ms.GCSys) }},
	{"go_memstats_next_gc_bytes", typeGauge, "Heap size target of the next garbage collection.", func(ms *runtime.MemStats) float64 { return float64(ms.NextGC) }},
	{"go_memstats_last_gc_time_seconds", typeGauge, "Unix time of the end of the last garbage collection.", func(ms *runtime.MemStats) float64 { return float64(ms.LastGC) / 1e9 }},
}

// gcQuantiles are the quantiles of go_gc_duration_seconds, as client_golang.
var gcQuantiles = [...]float64{0, 0.25, 0.5, 0.75, 1}

func (m *Metrics) describeRuntime() {
	e := &m.expo
	e.describe("go_info", typeGauge, "Go version the server was built with; always 1.")
	e.describe("go_goroutines", typeGauge, "Goroutines that currently exist.")
	e.describe("go_threads", typeGauge, "OS threads created.")
	e.describe("go_gc_duration_seconds", typeSummary, "Stop-the-world pause durations of the last garbage collections.")
	for _, r := range memStatsMetrics {
		e.describe(r.name, r.typ, r.help)
	}
	e.describe("process_cpu_seconds_total", typeCounter, "User and system CPU time spent.")
	e.describe("process_resident_memory_bytes", typeGauge, "Resident memory size.")
	e.describe("process_virtual_memory_bytes", typeGauge, "Virtual memory size.")
	e.describe("process_start_time_seconds", typeGauge, "Unix time the process started.")
	e.describe("process_max_fds", typeGauge, "Limit on open file descriptors.")
}

// writeRuntime writes the go_* and process_* families.
func (m *Metrics) writeRuntime(w io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b := make([]byte, 0, 4<<10)

	b = append(b, "go_info{version="...)
	b = append(b, quoteLabel(runtime.Version())...)
	b = append(b, "} 1\n"...)
	b = appendGauge(b, "go_goroutines", float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	b = appendGauge(b, "go_threads", float64(threads))

	n := min(int(ms.NumGC), len(ms.PauseNs))
	pauses := make([]uint64, n)
	copy(pauses, ms.PauseNs[:n])
	slices.Sort(pauses)
	for _, q := range gcQuantiles {
		v := 0.0
		if n > 0 {
			v = float64(pauses[int(q*float64(n-1))]) / 1e9
		}
		b = append(b, `go_gc_duration_seconds{quantile="`...)
		b = strconv.AppendFloat(b, q, 'g', -1, 64)
		b = append(b, `"} `...)
		b = appendFloat(b, v)
		b = append(b, '\n')
	}
	b = appendGauge(b, "go_gc_duration_seconds_sum", float64(ms.PauseTotalNs)/1e9)
	b = appendGauge(b, "go_gc_duration_seconds_count", float64(ms.NumGC))

	for _, r := range memStatsMetrics {
		b = appendGauge(b, r.name, r.value(&ms))
	}

	if r, err := readProc(); err == nil {
		b = appendGauge(b, "process_cpu_seconds_total", r.cpuSeconds)
		b = appendGauge(b, "process_resident_memory_bytes", float64(r.rssBytes))
		b = appendGauge(b, "process_virtual_memory_bytes", float64(r.virtualBytes))
		if !r.startTime.IsZero() {
			b = appendGauge(b, "process_start_time_seconds", float64(r.startTime.UnixNano())/1e9)
		}
		if r.maxFDs > 0 {
			b = appendGauge(b, "process_max_fds", float64(r.maxFDs))
		}
	}
	w.Write(b)
}

// appendGauge appends one `name value` line (the TYPE comes from the table).
func appendGauge(b []byte, name string, v float64) []byte {
	b = append(b, name...)
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}
