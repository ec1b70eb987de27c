package protocol

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A Node ws client that floods pings without reading is cut off for abuse
// and still learns why: the pongs sent before the limit, rate_limited errors
// with retryAfterMs, and close 1008 with its reason, never 1006. Without the
// lingering close, the server closed with the client's pings unread in its
// receive buffer, the kernel sent a reset, and the client dropped everything
// it had not read yet.
func TestFloodedClientGetsItsCloseFrame(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../testdata/nodews/node_modules/ws")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or the ws package is missing (run make test-deps): %v", err)
		}
		t.Skipf("node or the ws package is missing (run make test-deps): %v", err)
	}
	for _, n := range []int{20000, 2000} {
		_, addr := testServer(t, Config{}) // the default rates and bans; a server per round, as the IP gets banned
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, node, "../testdata/nodews/flood-client.js", "ws://"+addr+"/ws", strconv.Itoa(n)).Output()
		cancel()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var seen struct {
			Pongs, RateLimited, RetryAfterMs, Other, Code int
			Reason, Error                                 string
		}
		if err := json.Unmarshal(out, &seen); err != nil {
			t.Fatalf("node's output %q: %v", out, err)
		}
		t.Logf("%d pings: %+v", n, seen)
		if seen.Code != 1008 || !strings.Contains(seen.Reason, "banned") {
			t.Fatalf("%d pings: close %d %q, want 1008 with the ban's reason (1006 is a reset)", n, seen.Code, seen.Reason)
		}
		if seen.Pongs < DefaultMessageBurst || seen.RateLimited == 0 || seen.RetryAfterMs != seen.RateLimited {
			t.Fatalf("%d pings: %d pongs (want the burst, %d), %d rate_limited (%d with retryAfterMs)",
				n, seen.Pongs, DefaultMessageBurst, seen.RateLimited, seen.RetryAfterMs)
		}
	}
}
