package netcore

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/metrics"
)

// Checks before the upgrade: origin, client token, client IP, bans and the
// per-IP connection rate. Each failure is a *HandshakeError with the status
// of DESIGN.md's refusal table.

// Identity is who a connection belongs to.
type Identity struct {
	// UserID is the token's sub claim; empty for anonymous clients.
	UserID string
	// Authenticated is true when the client presented a valid token.
	Authenticated bool
}

// clientToken returns the token of ?token= or Authorization: Bearer.
func clientToken(req *Request) string {
	if t := req.Query("token"); t != "" {
		return t
	}
	if a := req.Authorization; len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// authenticate verifies the client token (HS256 with the client secret,
// exp required, sub is the user id).
func (s *Server) authenticate(req *Request) (Identity, *HandshakeError) {
	tok := clientToken(req)
	if tok == "" {
		if s.cfg.RequireAuth {
			return Identity{}, unauthorized("a token is required (?token= or Authorization: Bearer)")
		}
		return Identity{}, nil
	}
	if len(s.cfg.JWTSecret) == 0 {
		return Identity{}, unauthorized("this server does not accept client tokens")
	}
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return s.cfg.JWTSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		reason := "invalid token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			reason = "token expired"
		}
		return Identity{}, unauthorized(reason)
	}
	if claims.Subject == "" {
		return Identity{}, unauthorized("token has no sub claim")
	}
	return Identity{UserID: claims.Subject, Authenticated: true}, nil
}

func unauthorized(reason string) *HandshakeError {
	return &HandshakeError{Status: http.StatusUnauthorized, Reason: reason, RejectReason: metrics.RejectAuth,
		Header: [][2]string{{"WWW-Authenticate", `Bearer realm="sockmon"`}}}
}

// originAllowed checks the Origin header against Config.AllowedOrigins.
func (s *Server) originAllowed(origin string) bool {
	if origin == "" || len(s.cfg.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
		// https://*.example.com matches any subdomain.
		if scheme, host, ok := strings.Cut(o, "://*."); ok {
			if rest, ok := strings.CutPrefix(strings.ToLower(origin), strings.ToLower(scheme)+"://"); ok &&
				strings.HasSuffix(rest, "."+strings.ToLower(host)) {
				return true
			}
		}
	}
	return false
}

// clientIP is the peer's IP, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For address that is not.
func (s *Server) clientIP(c *Conn, req *Request) netip.Addr {
	ip := addrIP(c.nc.RemoteAddr())
	if len(s.cfg.TrustedProxies) == 0 || req.XForwardedFor == "" || !s.trusted(ip) {
		return ip
	}
	hops := strings.Split(req.XForwardedFor, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip
		}
		h = h.Unmap()
		if !s.trusted(h) {
			return h
		}
	}
	return ip
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

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

func tooMany(reason string, retry time.Duration, label metrics.RejectReason) *HandshakeError {
	secs := int((retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return &HandshakeError{Status: http.StatusTooManyRequests, Reason: reason, RejectReason: label,
		Header: [][2]string{{"Retry-After", strconv.Itoa(secs)}}}
}

// admit runs every check of a well-formed upgrade request, in the order of
// cheapest refusal first, and returns the client's identity.
func (s *Server) admit(c *Conn, req *Request) (Identity, netip.Addr, *HandshakeError) {
	if !s.originAllowed(req.Origin) {
		return Identity{}, netip.Addr{}, &HandshakeError{Status: http.StatusForbidden, Reason: "origin " + strconv.Quote(req.Origin) + " is not allowed", RejectReason: metrics.RejectOrigin}
	}
	ip := s.clientIP(c, req)
	now := time.Now().UnixNano()
	if banned, left := s.bans.banned("ip:"+ip.String(), now); banned {
		return Identity{}, ip, tooMany("this address is banned for abuse", left, metrics.RejectBanned)
	}
	if s.cfg.ConnRate > 0 {
		if ok, retry := s.ipLimit.allow(ip, s.cfg.ConnBurst, time.Duration(s.cfg.ConnBurst)*time.Second/time.Duration(s.cfg.ConnRate), now); !ok {
			return Identity{}, ip, tooMany("too many connections from this address", retry, metrics.RejectRate)
		}
	}
	id, herr := s.authenticate(req)
	if herr != nil {
		return Identity{}, ip, herr
	}
	if id.Authenticated {
		if banned, left := s.bans.banned("user:"+id.UserID, now); banned {
			return Identity{}, ip, tooMany("this user is banned for abuse", left, metrics.RejectBanned)
		}
	}
	if s.maintenance.Load() != nil {
		return Identity{}, ip, &HandshakeError{Status: http.StatusServiceUnavailable, Reason: "server in maintenance",
			Header: [][2]string{{"Retry-After", "30"}}, RejectReason: metrics.RejectMaintenance}
	}
	return id, ip, nil
}
