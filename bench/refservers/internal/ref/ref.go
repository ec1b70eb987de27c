// Package ref holds what every reference echo server shares: its limits,
// its path and its command line, so the capacity suite compares servers
// doing the same work.
package ref

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const (
	// MaxMessage is the largest message (or frame, for the raw server)
	// accepted; larger ones close the connection with 1009.
	MaxMessage = 64 << 10
	// Path is where the WebSocket upgrade is served.
	Path = "/echo"
)

// Addr parses the command line (-addr host:port) of server name.
func Addr(name string) string {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9001", "listen address")
	_ = fs.Parse(os.Args[1:])
	return *addr
}

// Ready tells the capacity driver the server listens, on stdout.
func Ready(name, addr string) {
	fmt.Printf("%s echo listening on ws://%s%s\n", name, addr, Path)
}

// Wait blocks until SIGINT or SIGTERM.
func Wait() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
}

// Fatal prints err and exits with status 1.
func Fatal(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
