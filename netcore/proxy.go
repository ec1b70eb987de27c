package netcore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/cloudwego/netpoll"
	"github.com/pires/go-proxyproto"
	"github.com/sockmon/sockmon/metrics"
)

// The PROXY protocol (v1 and v2, as HAProxy's send-proxy and send-proxy-v2,
// and AWS NLBs send it) on the client listener: a load balancer in TCP mode
// prefixes each connection with the client's address, and that address is
// the one admission, limits, bans and listings use. The framing (how many
// bytes the header takes) is read here; the header itself is parsed and
// validated by github.com/pires/go-proxyproto.

// ProxyMode says whether connections start with a PROXY protocol header.
type ProxyMode uint8

// PROXY protocol modes (--proxy-protocol).
const (
	// ProxyOff: no header is expected; one is a bad request like any
	// garbage. The default.
	ProxyOff ProxyMode = iota
	// ProxyOptional: a trusted peer may send a header; connections without
	// one are served with the peer's address.
	ProxyOptional
	// ProxyOn: every connection must come from a trusted peer and start
	// with a header.
	ProxyOn
)

// ParseProxyMode parses "off", "optional" or "on".
func ParseProxyMode(s string) (ProxyMode, error) {
	switch strings.ToLower(s) {
	case "off", "":
		return ProxyOff, nil
	case "optional":
		return ProxyOptional, nil
	case "on":
		return ProxyOn, nil
	}
	return ProxyOff, fmt.Errorf("proxy protocol mode %q: want off, optional or on", s)
}

func (m ProxyMode) String() string {
	return [...]string{"off", "optional", "on"}[min(int(m), 2)]
}

// proxyV1Max is the longest v1 header the specification allows (107 bytes,
// CRLF included).
const proxyV1Max = 107

// readProxyHeader reads the PROXY header at the start of a connection when
// the mode asks for one, and records the client address it names. It
// returns false when the connection was refused (closed, counted as a
// rejection) or the socket is gone. It blocks the reader until the header's
// bytes have arrived; the sweeper's handshake timeout bounds that.
func (c *Conn) readProxyHeader(r netpoll.Reader) bool {
	s := c.srv
	peer := addrIP(c.nc.RemoteAddr())
	trusted := InPrefixes(peer, s.cfg.TrustedProxies)
	n, present, err := c.proxyHeaderLen(r)
	switch {
	case err != nil:
		c.refuseProxy("malformed PROXY header: " + err.Error())
		return false
	case n < 0:
		_ = c.nc.Close() // the socket went away mid-header
		return false
	case present && !trusted:
		c.refuseProxy("PROXY header from " + peer.String() + ", which is not in --trusted-proxies")
		return false
	case !present && s.cfg.ProxyProtocol == ProxyOn:
		c.refuseProxy("no PROXY header; --proxy-protocol on requires one")
		return false
	case !present:
		c.proxyDone = true
		return true
	}
	p, _ := r.Peek(n)
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(p), max(16, n)))
	if err != nil {
		c.refuseProxy("malformed PROXY header: " + err.Error())
		return false
	}
	if !h.Command.IsLocal() { // LOCAL: the balancer's own health check
		if src, _, ok := h.IPs(); ok {
			if ip, ok := netip.AddrFromSlice(src); ok {
				c.rare().proxyIP = ip.Unmap()
			}
		}
	}
	_ = r.Skip(n)
	_ = r.Release()
	c.proxyDone = true
	return true
}

// proxyHeaderLen waits for enough input to tell whether a PROXY header is
// there and how long it is: n is its length (the input holds n bytes once it
// returns), present whether there is one, n -1 when the socket closed. A
// header longer than Config.MaxHeaderBytes, or a v1 line without its CRLF
// within 107 bytes, is an error.
func (c *Conn) proxyHeaderLen(r netpoll.Reader) (n int, present bool, err error) {
	peek := func(k int) ([]byte, bool) {
		p, err := r.Peek(k)
		return p, err == nil
	}
	p, ok := peek(1)
	if !ok {
		return -1, false, nil
	}
	switch p[0] {
	case proxyproto.SIGV1[0]:
		if p, ok = peek(len(proxyproto.SIGV1)); !ok {
			return -1, false, nil
		}
		if !bytes.Equal(p, proxyproto.SIGV1) {
			return 0, false, nil
		}
		for k := len(proxyproto.SIGV1) + 1; ; k++ {
			if p, ok = peek(k); !ok {
				return -1, false, nil
			}
			if p[k-1] == '\n' {
				return k, true, nil
			}
			if k >= proxyV1Max {
				return 0, true, fmt.Errorf("v1 line longer than %d bytes", proxyV1Max)
			}
		}
	case proxyproto.SIGV2[0]:
		if p, ok = peek(16); !ok {
			return -1, false, nil
		}
		if !bytes.Equal(p[:12], proxyproto.SIGV2) {
			return 0, false, nil
		}
		n = 16 + int(binary.BigEndian.Uint16(p[14:16])) // TLVs included: the library skips them
		if n > c.srv.cfg.MaxHeaderBytes {
			return 0, true, fmt.Errorf("v2 header of %d bytes, over %d", n, c.srv.cfg.MaxHeaderBytes)
		}
		if _, ok = peek(n); !ok {
			return -1, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// refuseProxy closes a connection whose PROXY header is missing, malformed
// or not from a trusted peer: there is no HTTP to answer in yet.
func (c *Conn) refuseProxy(reason string) {
	s := c.srv
	s.stats.rejected.Add(1)
	s.metrics.ConnectionRejected(metrics.RejectProxy)
	s.log.Debug("connection refused", "peer", c.RemoteAddr(), "reason", reason)
	c.readDone = true
	_ = c.nc.Close()
}
