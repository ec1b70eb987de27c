package protocol

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
)

// Admission (netcore.Admitter) for every route of the protocol, the echo
// route included: origin, client IP, bans, the per-IP connection rate and
// the client token, in the order of cheapest refusal first. Each failure is
// a *netcore.HandshakeError with the status of the README's refusal table.
// The engine adds maintenance, draining and the connection cap after it.

var _ netcore.Admitter = (*Service)(nil)

// Admit implements netcore.Admitter.
func (svc *Service) Admit(req *netcore.Request, peer netip.Addr) (netcore.Admission, *netcore.HandshakeError) {
	if !svc.originAllowed(req.Origin) {
		return netcore.Admission{}, &netcore.HandshakeError{Status: http.StatusForbidden, Reason: "origin " + strconv.Quote(req.Origin) + " is not allowed", RejectReason: metrics.RejectOrigin}
	}
	ip := netcore.ForwardedClient(peer, req.XForwardedFor, svc.trusted)
	now := svc.mono()
	svc.maybeExpire(now)
	// A trusted proxy's own address is many clients: never banned or
	// rate-limited as one (its clients are, when it names them).
	if key, ok := svc.ipKey(ip); ok {
		if banned, left := svc.bans.banned(key, now); banned {
			return netcore.Admission{}, tooMany("this address is banned for abuse", left, metrics.RejectBanned)
		}
		if svc.cfg.ConnRate > 0 {
			if ok, retry := svc.ipLimit.allow(svc.ipPrefix(ip), svc.cfg.ConnBurst, time.Duration(svc.cfg.ConnBurst)*time.Second/time.Duration(svc.cfg.ConnRate), now); !ok {
				return netcore.Admission{}, tooMany("too many connections from this address", retry, metrics.RejectRate)
			}
		}
	}
	adm, herr := svc.authenticate(req)
	if herr != nil {
		return netcore.Admission{}, herr
	}
	if adm.Authenticated {
		if banned, left := svc.bans.banned("user:"+adm.UserID, now); banned {
			return netcore.Admission{}, tooMany("this user is banned for abuse", left, metrics.RejectBanned)
		}
	}
	adm.ClientIP = ip
	return adm, nil
}

// ipPrefix is the network a client address is limited and banned as: the
// address itself for IPv4, its /Config.IPv6Prefix (default /64, one
// subscriber's allocation) for IPv6, so that one /64 is not an endless
// supply of fresh keys.
func (svc *Service) ipPrefix(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.Is4In6() && svc.cfg.IPv6Prefix < 128 {
		if p, err := ip.Prefix(svc.cfg.IPv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// ipKey is the ban key of a client address, and false when the address is
// a trusted proxy's: the real client is unknown, so nothing is keyed on it.
func (svc *Service) ipKey(ip netip.Addr) (string, bool) {
	if !ip.IsValid() || netcore.InPrefixes(ip, svc.trusted) {
		return "", false
	}
	return "ip:" + svc.ipPrefix(ip).String(), true
}

// clientToken returns the token of ?token= or Authorization: Bearer.
func clientToken(req *netcore.Request) string {
	if t := req.Query("token"); t != "" {
		return t
	}
	if a := req.Authorization; len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// authenticate verifies the client token (HS256 with the client secret,
// exp required, aud, iss and the lifetime when the Config sets them); sub
// is the user id, and may not be one the server speaks as in publish's
// from: "server", or "anon:..." (an anonymous socket).
func (svc *Service) authenticate(req *netcore.Request) (netcore.Admission, *netcore.HandshakeError) {
	tok := clientToken(req)
	if tok == "" {
		if svc.cfg.RequireAuth {
			return netcore.Admission{}, unauthorized("a token is required (?token= or Authorization: Bearer)")
		}
		return netcore.Admission{}, nil
	}
	if len(svc.cfg.JWTSecret) == 0 {
		return netcore.Admission{}, unauthorized("this server does not accept client tokens")
	}
	const leeway = 5 * time.Second
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)}
	if svc.cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(svc.cfg.JWTAudience))
	}
	if svc.cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(svc.cfg.JWTIssuer))
	}
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return svc.cfg.JWTSecret, nil }, opts...)
	if err != nil {
		reason := "invalid token"
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			reason = "token expired"
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			reason = "invalid token: wrong audience"
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			reason = "invalid token: wrong issuer"
		}
		return netcore.Admission{}, unauthorized(reason)
	}
	if max := svc.cfg.JWTMaxTTL; max > 0 {
		// Minted for longer than the maximum, or valid for longer from now
		// (which also catches a token without iat).
		exp, iat := claims.ExpiresAt.Time, claims.IssuedAt
		if iat != nil && exp.Sub(iat.Time) > max+leeway || time.Until(exp) > max+leeway {
			return netcore.Admission{}, unauthorized("invalid token: it lives longer than this server accepts")
		}
	}
	switch {
	case claims.Subject == "":
		return netcore.Admission{}, unauthorized("token has no sub claim")
	case claims.Subject == "server" || strings.HasPrefix(claims.Subject, "anon:"):
		return netcore.Admission{}, unauthorized("token sub " + strconv.Quote(claims.Subject) + " is reserved (the server and anonymous sockets speak as it)")
	}
	return netcore.Admission{UserID: claims.Subject, Authenticated: true}, nil
}

func unauthorized(reason string) *netcore.HandshakeError {
	return &netcore.HandshakeError{Status: http.StatusUnauthorized, Reason: reason, RejectReason: metrics.RejectAuth,
		Header: [][2]string{{"WWW-Authenticate", `Bearer realm="sockmon"`}}}
}

func tooMany(reason string, retry time.Duration, label metrics.RejectReason) *netcore.HandshakeError {
	return &netcore.HandshakeError{Status: http.StatusTooManyRequests, Reason: reason, RejectReason: label,
		Header: netcore.RetryAfter(retry)}
}

// originAllowed checks the Origin header against Config.AllowedOrigins.
func (svc *Service) originAllowed(origin string) bool {
	if origin == "" || len(svc.cfg.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range svc.cfg.AllowedOrigins {
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
