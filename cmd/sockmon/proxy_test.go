package main

import (
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards the TCP connections it accepts on a loopback port to
// target and returns its address. forward copies one direction, from src
// to dst (toClient: from target to the client); when either direction
// returns, both sockets of the pair are closed. done closes when the test
// ends, which stops the proxy, closes every socket and waits for every
// goroutine.
func tcpProxy(tb testing.TB, target string, forward func(dst, src net.Conn, toClient bool, done <-chan struct{})) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn, toClient bool) {
		defer wg.Done()
		forward(dst, src, toClient, done)
		dst.Close()
		src.Close()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go pipe(up, c, false)
			go pipe(c, up, true)
		}
	}()
	return ln.Addr().String()
}
