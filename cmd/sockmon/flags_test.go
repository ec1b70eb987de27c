package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// runBinary runs the built sockmon with args and extra environment (and no
// SOCKMON_* variable of the test's own) and returns stdout, stderr and the
// exit code.
func runBinary(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	bin, err := buildSockmon()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKMON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

var (
	flagLineRE       = regexp.MustCompile(`(?m)^  --[a-z]`)
	singleDashFlagRE = regexp.MustCompile(`(?m)^\s+-[a-z]`)
)

// --help of serve, load and token goes to stdout (so `| less` shows it) and
// exits 0; flags are written --name, as the README writes them.
func TestHelpOnStdoutWithDoubleDashFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "load", "token"} {
		for _, help := range []string{"--help", "-h"} {
			stdout, stderr, code := runBinary(t, nil, cmd, help)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: sockmon "+cmd) {
				t.Errorf("sockmon %s %s: exit %d, stderr %q, stdout starts %q; want the usage on stdout and exit 0", cmd, help, code, stderr, head(stdout))
				continue
			}
			if n := len(flagLineRE.FindAllString(stdout, -1)); n < 3 {
				t.Errorf("sockmon %s %s: %d flags in the --name form:\n%s", cmd, help, n, stdout)
			}
			if m := singleDashFlagRE.FindString(stdout); m != "" {
				t.Errorf("sockmon %s %s: a flag in the -name form (%q):\n%s", cmd, help, m, stdout)
			}
		}
		// A bad flag: stderr, exit 2, nothing on stdout.
		stdout, stderr, code := runBinary(t, nil, cmd, "--no-such-flag")
		if code != 2 || stdout != "" || !strings.Contains(stderr, "--no-such-flag") || !strings.Contains(stderr, "sockmon "+cmd+" --help") {
			t.Errorf("sockmon %s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the error on stderr", cmd, code, stdout, stderr)
		}
	}
}

// serve --help shows the values in force: a SOCKMON_* variable's, and a
// flag given before --help.
func TestServeHelpShowsTheEnvironment(t *testing.T) {
	stdout, _, code := runBinary(t, []string{"SOCKMON_MAX_CONNS=500", "SOCKMON_DRAIN_DELAY=0"}, "serve", "--conn-rate", "7", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"  --max-conns (500 from $SOCKMON_MAX_CONNS; built-in default 10000)\n",
		"  --drain-delay (0s from $SOCKMON_DRAIN_DELAY; built-in default 5s)\n",
		"  --conn-rate (7 from the command line; built-in default 20, $SOCKMON_CONN_RATE)\n",
		"  --max-message-size (default 65536, $SOCKMON_MAX_MESSAGE_SIZE)\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("serve --help does not show %q:\n%s", want, stdout)
		}
	}
	// The top-level help shows serve's flags the same way.
	stdout, _, code = runBinary(t, []string{"SOCKMON_MAX_CONNS=500"}, "--help")
	if code != 0 || !strings.Contains(stdout, "  --max-conns (500 from $SOCKMON_MAX_CONNS; built-in default 10000)\n") {
		t.Errorf("sockmon --help: exit %d, does not show SOCKMON_MAX_CONNS:\n%s", code, stdout)
	}
}

func head(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
