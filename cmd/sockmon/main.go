// Command sockmon is a WebSocket server with production monitoring built in,
// and its load generator.
//
//	sockmon serve [flags]   run the server
//	sockmon load [flags]    drive load at a WebSocket server
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
	case "version":
		fmt.Fprintf(stdout, "sockmon %s (revision %s)\n", version, revision)
		return 0
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	default:
		if cmd, ok := extraCommands[args[0]]; ok {
			return cmd(args[1:], stdout, stderr)
		}
		fmt.Fprintf(stderr, "sockmon: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
}

// extraCommands are subcommands registered by other files of this package.
var extraCommands = map[string]func(args []string, stdout, stderr io.Writer) int{}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: sockmon <command> [flags]

Commands:
  serve     run the WebSocket server (sockmon serve --help lists its flags)
  version   print the version
`)
	for name := range extraCommands {
		fmt.Fprintf(w, "  %-9s (sockmon %s --help)\n", name, name)
	}
	fmt.Fprint(w, `
Every serve flag can also be set from the environment: --max-conns is SOCKMON_MAX_CONNS.
`)
}
