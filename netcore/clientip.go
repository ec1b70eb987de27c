package netcore

import (
	"net"
	"net/netip"
	"strings"
)

// ForwardedClient returns the client's address for a request that reached
// us from peer with the X-Forwarded-For header xff: when peer is one of the
// trusted proxies, the rightmost address in xff that is not a trusted proxy
// (each proxy appends the address it received the request from, as
// HAProxy's "option forwardfor" and nginx's $proxy_add_x_forwarded_for do,
// so the rightmost untrusted hop is the first one we can believe);
// otherwise, or when xff is empty or malformed, peer itself. The left of
// the header is whatever the client wrote and is never believed.
func ForwardedClient(peer netip.Addr, xff string, trusted []netip.Prefix) netip.Addr {
	if len(trusted) == 0 || xff == "" || !InPrefixes(peer, trusted) {
		return peer
	}
	for xff != "" {
		var hop string
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			hop, xff = xff[i+1:], xff[:i]
		} else {
			hop, xff = xff, ""
		}
		h, err := netip.ParseAddr(strings.TrimSpace(hop))
		if err != nil {
			return peer
		}
		h = h.Unmap()
		if !InPrefixes(h, trusted) {
			return h
		}
	}
	return peer
}

// InPrefixes reports whether ip is in one of ps.
func InPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP is the IP of a TCP address, IPv4-mapped addresses unmapped.
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}
