// Command sockmon is a WebSocket server with production monitoring built in,
// and its load generator.
//
//	sockmon serve [flags]   run the server
//	sockmon load [flags]    drive load at a WebSocket server
//	sockmon check [flags]   check a node for Nagios, Prometheus or people
//	sockmon token [flags]   mint a client or admin JWT
//	sockmon alerts test     send a test alert notification
//	sockmon version         print the version
package main

import (
	"fmt"
	"io"
	"os"
)

// Set at build time with -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCommand(args[1:], stdout, stderr)
	case "load":
		return loadCommand(args[1:], stdout, stderr)
	case "check":
		return checkCommand(args[1:], stdout, stderr)
	case "token":
		return tokenCommand(args[1:], stdout, stderr)
	case "alerts":
		return alertsCommand(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "sockmon %s (revision %s)\n", version, revision)
		return 0
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "sockmon: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: sockmon <command> [flags]

Commands:
  serve     run the WebSocket server (sockmon serve --help lists its flags)
  load      drive load at a WebSocket server and report latency (sockmon load --help)
  check     check a node's health (and a WebSocket canary) for Nagios, Prometheus or people;
            exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (sockmon check --help)
  token     mint a client or admin JWT from the secret in the environment (sockmon token --help)
  alerts    alerts test --channel NAME: send a test notification with serve's alert flags
            and environment (sockmon alerts test --help)
  version   print the version

Every serve flag can also be set from the environment: --max-conns is SOCKMON_MAX_CONNS.

`)
	fs, _ := newServeFlagSet()
	_ = applyEnv(fs, os.Getenv)
	serveUsage(w, fs, os.Getenv)
}
