package netcore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Deadlines, buckets and bans run on monotonic time (Server.mono, the
// protocol's Service.mono, metrics' Nanotime): a wall-clock step would
// otherwise idle-close every connection (forward) or suspend every timeout
// and ban (backward). This keeps wall-clock arithmetic out of the engine
// and the protocol.
func TestNoWallClockArithmetic(t *testing.T) {
	for _, dir := range []string{".", "protocol"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"time.Now().Unix", ".UnixNano()", "time.Unix("} {
				if strings.Contains(string(b), bad) {
					t.Errorf("%s uses %s: use the monotonic clock (mono) for internal times", f, bad)
				}
			}
		}
	}
}
