package control

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Where the memory limit of the health check comes from, as the admin
// views name it.
const (
	MemoryLimitConfig   = "flag"       // --memory-limit (Config.MemoryLimit)
	MemoryLimitGo       = "GOMEMLIMIT" // the Go runtime's soft limit
	MemoryLimitCgroupV2 = "cgroup v2"  // the container's memory.max
	MemoryLimitCgroupV1 = "cgroup v1"  // the container's memory.limit_in_bytes
	MemoryLimitNone     = "none"       // no limit known: no memory check
)

// noLimitAbove is where a cgroup figure stops meaning a limit: v1 reports
// "unlimited" as 2^63 rounded down to a page, and no machine has an EiB.
const noLimitAbove = 1 << 60

// DefaultCgroupRoot is where the cgroup file systems are mounted.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// resolveMemoryLimit picks the limit of the memory check: the configured
// one, else GOMEMLIMIT, else the cgroup's, else none.
func resolveMemoryLimit(configured int64, cgroupRoot, procCgroup string) (int64, string) {
	switch {
	case configured > 0:
		return configured, MemoryLimitConfig
	case configured < 0:
		return 0, MemoryLimitNone
	}
	if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
		return lim, MemoryLimitGo
	}
	if lim, src := cgroupMemoryLimit(cgroupRoot, procCgroup); lim > 0 {
		return lim, src
	}
	return 0, MemoryLimitNone
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup: v2's
// memory.max, else v1's memory.limit_in_bytes, in the cgroup that
// procCgroup (/proc/self/cgroup) names under root, or at root itself (a
// container with its own cgroup namespace sees its cgroup there). "max",
// 0, unreadable files and absurd values are no limit.
func cgroupMemoryLimit(root, procCgroup string) (int64, string) {
	v2, v1 := "", ""
	if b, err := os.ReadFile(procCgroup); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case containsField(parts[1], "memory"):
				v1 = parts[2]
			}
		}
	}
	for _, p := range []string{filepath.Join(root, v2, "memory.max"), filepath.Join(root, "memory.max")} {
		if lim, ok := readLimit(p); ok {
			return lim, MemoryLimitCgroupV2
		}
	}
	for _, p := range []string{filepath.Join(root, "memory", v1, "memory.limit_in_bytes"), filepath.Join(root, "memory", "memory.limit_in_bytes")} {
		if lim, ok := readLimit(p); ok {
			return lim, MemoryLimitCgroupV1
		}
	}
	return 0, MemoryLimitNone
}

// readLimit reads one cgroup limit file; ok is false when it holds no
// limit.
func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= noLimitAbove {
		return 0, false // "max", garbage, or unlimited
	}
	return v, true
}

func containsField(list, want string) bool {
	for _, f := range strings.Split(list, ",") {
		if f == want {
			return true
		}
	}
	return false
}
