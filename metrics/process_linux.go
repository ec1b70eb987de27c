//go:build linux

package metrics

import (
	"os"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/[pid]/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// readProc reads this process's statistics from /proc.
func readProc() (procReading, error) {
	var r procReading
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return r, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return r, err
	}
	r.cpuSeconds = float64(st.utime+st.stime) / clockTicks
	r.rssBytes = st.rss * uint64(os.Getpagesize())
	r.virtualBytes = st.vsize
	r.threads = st.threads
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		if boot, err := parseBootTime(data); err == nil {
			ns := int64(st.starttime) * (int64(time.Second) / clockTicks)
			r.startTime = time.Unix(boot, ns)
		}
	}
	data, err = os.ReadFile("/proc/loadavg")
	if err != nil {
		return r, err
	}
	if r.load, err = parseLoadavg(data); err != nil {
		return r, err
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		r.maxFDs = lim.Cur
	}
	return r, nil
}
