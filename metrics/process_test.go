package metrics

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

const sampleStat = "4242 (sock mon) (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 50 0 0 20 0 12 0 987654 123456789 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat([]byte(sampleStat))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{utime: 150, stime: 50, threads: 12, starttime: 987654, vsize: 123456789, rss: 3000}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	bad := []struct{ name, in, wantErr string }{
		{"no command", "4242 S 1 2 3", "no ')'"},
		{"too short", "1 (x) S 1 2 3", "fields"},
		{"not a number", strings.Replace(sampleStat, " 150 ", " abc ", 1), "field 14"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if _, err := parseProcStat([]byte(b.in)); err == nil || !strings.Contains(err.Error(), b.wantErr) {
				t.Errorf("error %v, want one containing %q", err, b.wantErr)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	l, err := parseLoadavg([]byte("0.52 1.25 2.00 3/456 7890\n"))
	if err != nil || l != [3]float64{0.52, 1.25, 2} {
		t.Errorf("got %v, %v", l, err)
	}
	for _, in := range []string{"", "1 2", "1 x 3"} {
		if _, err := parseLoadavg([]byte(in)); err == nil {
			t.Errorf("parseLoadavg(%q): no error", in)
		}
	}
}

func TestParseBootTime(t *testing.T) {
	got, err := parseBootTime([]byte("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"))
	if err != nil || got != 1700000000 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := parseBootTime([]byte("cpu 1 2 3\n")); err == nil {
		t.Error("no error without btime")
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte(sampleStat))
	f.Add([]byte("1 (a) R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseProcStat(data)
		_, _ = parseLoadavg(data)
		_, _ = parseBootTime(data)
	})
}

func TestProcSamplerRates(t *testing.T) {
	cpu := 10.0
	p := procSampler{read: func() (procReading, error) {
		return procReading{cpuSeconds: cpu, rssBytes: 42, load: [3]float64{1, 2, 3}}, nil
	}}
	t0 := time.Unix(1000, 0)
	first := p.sample(t0)
	if !first.Available || first.CPUFraction != 0 || first.RSSBytes != 42 || first.Load15 != 3 {
		t.Errorf("first sample %+v", first)
	}
	cpu += 5 // 5 CPU seconds in 10 s
	s := p.sample(t0.Add(10 * time.Second))
	want := 0.5 / float64(runtime.NumCPU())
	if d := s.CPUFraction - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("CPU fraction %v, want %v", s.CPUFraction, want)
	}
	if s.Goroutines <= 0 || s.HeapInuseBytes == 0 || s.NumCPU != runtime.NumCPU() {
		t.Errorf("runtime figures missing: %+v", s)
	}
}

func TestProcSamplerUnavailable(t *testing.T) {
	p := procSampler{read: func() (procReading, error) { return procReading{}, ErrProcUnavailable }}
	s := p.sample(time.Unix(1, 0))
	if s.Available || s.Unavailable == "" || s.RSSBytes != 0 {
		t.Errorf("unavailable sample %+v", s)
	}
	if s.Goroutines == 0 {
		t.Error("Go runtime figures must be there without /proc")
	}
}

func TestReadProc(t *testing.T) {
	r, err := readProc()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrProcUnavailable) {
			t.Fatalf("readProc on %s: %v, want ErrProcUnavailable", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.rssBytes == 0 || r.threads == 0 || r.cpuSeconds < 0 || r.startTime.IsZero() || r.maxFDs == 0 {
		t.Errorf("implausible /proc reading %+v", r)
	}
	if d := time.Since(r.startTime); d < -2*time.Second || d > 24*time.Hour {
		t.Errorf("process start time %v is %v ago", r.startTime, d)
	}
}

func TestMetricsProcess(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	clk.Advance(5 * time.Second)
	m.Sample()
	p := m.Process()
	if !p.Available || p.RSSBytes != 1<<20 || !p.Time.Equal(clk.Now()) {
		t.Errorf("Process() = %+v", p)
	}
}
