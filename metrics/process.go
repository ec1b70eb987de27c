package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// ErrProcUnavailable is returned, wrapped, by the process readers on systems
// without a Linux /proc.
var ErrProcUnavailable = errors.New("metrics: process statistics unavailable: no /proc on " + runtime.GOOS)

// ProcessStats describes the server process. Go runtime figures are always
// set; the /proc figures (RSS, CPU, threads, load average) only when
// Available is true, and Unavailable then says why.
type ProcessStats struct {
	Time        time.Time `json:"timestamp"`
	Available   bool      `json:"available"`
	Unavailable string    `json:"unavailable,omitempty"`

	Goroutines        int     `json:"goroutines"`
	HeapInuseBytes    uint64  `json:"heapInuseBytes"`
	HeapAllocBytes    uint64  `json:"heapAllocBytes"`
	HeapSysBytes      uint64  `json:"heapSysBytes"`
	AllocBytesPerSec  float64 `json:"allocBytesPerSec"` // over the last sampling interval
	GCCount           uint32  `json:"gcCount"`
	GCPauseTotalMs    float64 `json:"gcPauseTotalMs"` // since start
	GCPauseLastMs     float64 `json:"gcPauseLastMs"`
	GCPauseMaxMs      float64 `json:"gcPauseMaxMs"`      // longest pause in the last sampling interval
	GCPauseIntervalMs float64 `json:"gcPauseIntervalMs"` // total pause in the last sampling interval

	NumCPU       int       `json:"numCpu"`
	CPUSeconds   float64   `json:"cpuSeconds"`
	CPUFraction  float64   `json:"cpuFraction"` // of all NumCPU cores, 0..1, over the last sampling interval
	RSSBytes     uint64    `json:"rssBytes"`
	VirtualBytes uint64    `json:"virtualBytes"`
	Threads      int       `json:"threads"`
	Load1        float64   `json:"load1"`
	Load5        float64   `json:"load5"`
	Load15       float64   `json:"load15"`
	StartTime    time.Time `json:"startTime"`
}

// procReading is one read of /proc.
type procReading struct {
	cpuSeconds   float64
	rssBytes     uint64
	virtualBytes uint64
	threads      int
	startTime    time.Time // zero when unknown
	load         [3]float64
	maxFDs       uint64 // 0 when unknown
}

// procStat holds the fields sockmon uses from /proc/[pid]/stat.
type procStat struct {
	utime, stime uint64 // clock ticks
	threads      int
	starttime    uint64 // clock ticks after boot
	vsize        uint64 // bytes
	rss          uint64 // pages
}

// parseProcStat parses /proc/[pid]/stat (proc(5)). The command name may
// contain spaces and parentheses, so the fields are counted from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	var p procStat
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return p, fmt.Errorf("metrics: /proc stat: no ')' after the command in %q", truncate(data))
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state); we need up to field 24 (rss).
	const want = 22
	if len(f) < want {
		return p, fmt.Errorf("metrics: /proc stat: got %d fields after the command, want at least %d", len(f), want)
	}
	var err error
	num := func(field int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(string(f[field-3]), 10, 64)
		if err != nil {
			err = fmt.Errorf("metrics: /proc stat field %d: %w", field, err)
		}
		return v
	}
	p.utime = num(14)
	p.stime = num(15)
	p.threads = int(num(20))
	p.starttime = num(22)
	p.vsize = num(23)
	p.rss = num(24)
	return p, err
}

// parseLoadavg parses /proc/loadavg.
func parseLoadavg(data []byte) ([3]float64, error) {
	var l [3]float64
	f := bytes.Fields(data)
	if len(f) < 3 {
		return l, fmt.Errorf("metrics: /proc/loadavg: got %d fields, want at least 3 in %q", len(f), truncate(data))
	}
	for i := range l {
		v, err := strconv.ParseFloat(string(f[i]), 64)
		if err != nil {
			return l, fmt.Errorf("metrics: /proc/loadavg field %d: %w", i+1, err)
		}
		l[i] = v
	}
	return l, nil
}

// parseBootTime finds btime (boot time, Unix seconds) in /proc/stat.
func parseBootTime(data []byte) (int64, error) {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, errors.New("metrics: /proc/stat: no btime line")
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// procSampler turns successive readings into ProcessStats with rates.
type procSampler struct {
	read func() (procReading, error)

	ms        runtime.MemStats
	sampled   bool
	prevTime  time.Time
	prevCPU   float64
	prevAlloc uint64
	prevNumGC uint32
	prevPause uint64
}

// sample reads the process now. now is the Metrics clock; rates use it.
func (p *procSampler) sample(now time.Time) ProcessStats {
	runtime.ReadMemStats(&p.ms)
	ms := &p.ms
	s := ProcessStats{
		Time:           now,
		Goroutines:     runtime.NumGoroutine(),
		HeapInuseBytes: ms.HeapInuse,
		HeapAllocBytes: ms.HeapAlloc,
		HeapSysBytes:   ms.HeapSys,
		GCCount:        ms.NumGC,
		GCPauseTotalMs: float64(ms.PauseTotalNs) / 1e6,
		NumCPU:         runtime.NumCPU(),
	}
	if ms.NumGC > 0 {
		s.GCPauseLastMs = float64(ms.PauseNs[(ms.NumGC+255)%256]) / 1e6
	}
	r, err := p.read()
	if err != nil {
		s.Unavailable = err.Error()
	} else {
		s.Available = true
		s.CPUSeconds = r.cpuSeconds
		s.RSSBytes = r.rssBytes
		s.VirtualBytes = r.virtualBytes
		s.Threads = r.threads
		s.Load1, s.Load5, s.Load15 = r.load[0], r.load[1], r.load[2]
		s.StartTime = r.startTime
	}
	if p.sampled {
		if dt := now.Sub(p.prevTime).Seconds(); dt > 0 {
			s.AllocBytesPerSec = float64(ms.TotalAlloc-p.prevAlloc) / dt
			if s.Available && s.NumCPU > 0 {
				s.CPUFraction = (r.cpuSeconds - p.prevCPU) / dt / float64(s.NumCPU)
			}
		}
		s.GCPauseIntervalMs = float64(ms.PauseTotalNs-p.prevPause) / 1e6
		var maxPause uint64
		for n := ms.NumGC; n > p.prevNumGC && ms.NumGC-n < 256; n-- {
			maxPause = max(maxPause, ms.PauseNs[(n+255)%256])
		}
		s.GCPauseMaxMs = float64(maxPause) / 1e6
	}
	p.sampled = true
	p.prevTime = now
	p.prevCPU = r.cpuSeconds
	p.prevAlloc = ms.TotalAlloc
	p.prevNumGC = ms.NumGC
	p.prevPause = ms.PauseTotalNs
	return s
}
