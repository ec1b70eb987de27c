package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/valyala/fasthttp"
)

// Sessions: the cookie is "<id>.<mac>", where id is 16 random bytes and mac
// the HMAC-SHA256 of the id and the expiry under a key drawn when the
// process starts. The session itself (sub, role, expiry, CSRF token) stays
// in memory, so a logout or a restart revokes it; the token it was signed
// in with is not kept anywhere.

// cookieName is the session cookie.
const cookieName = "sockmon_session"

// session is one signed-in browser.
type session struct {
	id      string // base64url of 16 random bytes
	sub     string
	role    string
	expires time.Time
	created time.Time
	csrf    string
}

// checkCSRF compares a presented CSRF token with the session's in
// constant time.
func (s *session) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sessions is the in-memory session table. Safe for concurrent use.
type sessions struct {
	key []byte
	max int
	ttl time.Duration

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(max int, ttl time.Duration) (*sessions, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &sessions{key: key, max: max, ttl: ttl, byID: map[string]*session{}}, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux (Go 1.24+ panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for p at now: it expires with the token or after
// the TTL, whichever comes first. When the table is full, expired sessions
// go, then the oldest.
func (ss *sessions) create(p control.Principal, now time.Time) *session {
	exp := now.Add(ss.ttl)
	if !p.Expires.IsZero() && p.Expires.Before(exp) {
		exp = p.Expires
	}
	s := &session{id: randomString(16), sub: p.Sub, role: p.Role, expires: exp, created: now, csrf: randomString(32)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byID) >= ss.max {
		var oldest *session
		for id, o := range ss.byID {
			if !now.Before(o.expires) {
				delete(ss.byID, id)
				continue
			}
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		if len(ss.byID) >= ss.max && oldest != nil {
			delete(ss.byID, oldest.id)
		}
	}
	ss.byID[s.id] = s
	return s
}

// mac signs the id and the expiry.
func (ss *sessions) mac(id string, exp time.Time) []byte {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp.Unix()))
	m.Write(b[:])
	return m.Sum(nil)
}

// cookieValue is the cookie that names s.
func (ss *sessions) cookieValue(s *session) string {
	return s.id + "." + base64.RawURLEncoding.EncodeToString(ss.mac(s.id, s.expires))
}

// get returns the live session a cookie names, or nil: the signature must
// verify, the session must exist (not logged out, not from an earlier
// process) and not be expired at now.
func (ss *sessions) get(cookie string, now time.Time) *session {
	id, sig, ok := strings.Cut(cookie, ".")
	if !ok || len(id) != 22 || len(sig) > 64 {
		return nil
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil
	}
	ss.mu.Lock()
	s := ss.byID[id]
	if s != nil && !now.Before(s.expires) {
		delete(ss.byID, id)
		s = nil
	}
	ss.mu.Unlock()
	if s == nil || !hmac.Equal(mac, ss.mac(id, s.expires)) {
		return nil
	}
	return s
}

// alive reports whether the session with id is still signed in at now.
func (ss *sessions) alive(id string, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	return s != nil && now.Before(s.expires)
}

// revoke ends a session.
func (ss *sessions) revoke(id string) {
	ss.mu.Lock()
	delete(ss.byID, id)
	ss.mu.Unlock()
}

// secure reports whether the request reached us over TLS, directly or
// through a proxy that says so: the cookie is then Secure.
func secure(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsTLS() || strings.EqualFold(string(ctx.Request.Header.Peek("X-Forwarded-Proto")), "https")
}

func setSessionCookie(ctx *fasthttp.RequestCtx, prefix, value string, exp time.Time) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(cookieName)
	c.SetValue(value)
	c.SetPath(prefix)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(secure(ctx))
	c.SetExpire(exp)
	c.SetMaxAge(max(1, int(time.Until(exp)/time.Second)))
	ctx.Response.Header.SetCookie(c)
}

func clearSessionCookie(ctx *fasthttp.RequestCtx, prefix string) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(cookieName)
	c.SetValue("")
	c.SetPath(prefix)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(secure(ctx))
	c.SetExpire(fasthttp.CookieExpireDelete)
	ctx.Response.Header.SetCookie(c)
}
