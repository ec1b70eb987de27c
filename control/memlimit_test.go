package control

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The container's limit is read from cgroup v2 or v1, in the process's own
// cgroup or at the root; "max", unlimited and garbage mean no limit.
func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    int64
		wantSrc string
	}{
		{"v2 in the process's cgroup", map[string]string{
			"proc":                           "0::/kubepods/pod1/c1\n",
			"fs/kubepods/pod1/c1/memory.max": "536870912\n",
		}, 536870912, MemoryLimitCgroupV2},
		{"v2 at the root (cgroup namespace)", map[string]string{"proc": "0::/\n", "fs/memory.max": "1073741824\n"}, 1 << 30, MemoryLimitCgroupV2},
		{"v2 max", map[string]string{"proc": "0::/\n", "fs/memory.max": "max\n"}, 0, MemoryLimitNone},
		{"v1 limited", map[string]string{
			"proc": "12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n",
			"fs/memory/docker/abc/memory.limit_in_bytes": "268435456\n",
		}, 268435456, MemoryLimitCgroupV1},
		{"v1 unlimited", map[string]string{"proc": "4:memory:/\n", "fs/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, MemoryLimitNone},
		{"garbage", map[string]string{"proc": "0::/\n", "fs/memory.max": "lots\n"}, 0, MemoryLimitNone},
		{"no cgroup files", map[string]string{"proc": "0::/\n"}, 0, MemoryLimitNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, tc.files)
			lim, src := cgroupMemoryLimit(filepath.Join(root, "fs"), filepath.Join(root, "proc"))
			if lim != tc.want || src != tc.wantSrc {
				t.Fatalf("got %d from %q, want %d from %q", lim, src, tc.want, tc.wantSrc)
			}
		})
	}
}

// The flag wins, then GOMEMLIMIT, then the cgroup; negative switches the
// check off.
func TestMemoryLimitPrecedence(t *testing.T) {
	root := writeTree(t, map[string]string{"proc": "0::/\n", "fs/memory.max": "1000000\n"})
	fs, proc := filepath.Join(root, "fs"), filepath.Join(root, "proc")
	old := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(old)
	check := func(configured, want int64, wantSrc string) {
		t.Helper()
		if lim, src := resolveMemoryLimit(configured, fs, proc); lim != want || src != wantSrc {
			t.Fatalf("configured %d: got %d from %q, want %d from %q", configured, lim, src, want, wantSrc)
		}
	}
	check(0, 1000000, MemoryLimitCgroupV2)
	check(42, 42, MemoryLimitConfig)
	check(-1, 0, MemoryLimitNone)
	debug.SetMemoryLimit(5 << 20)
	check(0, 5<<20, MemoryLimitGo)
}

// Health uses the cgroup's limit when nothing else is set, and the admin
// view says where it came from.
func TestHealthUsesTheCgroupLimit(t *testing.T) {
	root := writeTree(t, map[string]string{"memory.max": "1\n"}) // 1 byte: always over
	f := newFixture(t, func(c *Config) { c.CgroupRoot = root })
	h := f.ctl.Health()
	if h.Status != StatusUnhealthy {
		t.Fatalf("health %s %v, want unhealthy (memory over the cgroup's 1 byte)", h.Status, h.Reasons)
	}
	st, err := f.ctl.AdminStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.MemoryLimitBytes != 1 || st.Status.MemoryLimitSource != MemoryLimitCgroupV2 {
		t.Fatalf("admin view: limit %d from %q", st.Status.MemoryLimitBytes, st.Status.MemoryLimitSource)
	}
}
