package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Redaction: every line goes through redactHandler before any output sees
// it. It replaces
//
//   - the value of an attribute whose key names a secret (token, secret,
//     password, pass, pwd, authorization, cookie, api key, access key,
//     session, dsn...), unless the value is a number or a boolean (a count
//     of "auth" refusals is not a secret);
//   - in any text (the message, string values, errors, JSON values at any
//     depth): the configured secrets verbatim, anything shaped like a JWT,
//     what follows "Bearer " or "Basic ", the userinfo of a URL
//     (scheme://user:pass@), the value of token=, password=, pass=, pwd=,
//     secret=, access_key=, session=, dsn=... parameters, and the rest of
//     an Authorization: or Cookie: header line.
//
// The audit log's data is redacted by the control package before it is
// logged; this is the net under every line, that one included.

// Redacted replaces what was removed.
const Redacted = "[REDACTED]"

// sensitiveKeys are matched against keys lowercased with '_' and '-'
// removed: a key containing any of them has its value replaced.
var sensitiveKeys = []string{
	"token", "secret", "pass", "pwd", "authorization", "authheader", "apikey", "accesskey",
	"credential", "privatekey", "routingkey", "webhook", "cookie", "signature", "jwt",
	"session", "dsn", "bearer",
}

// SensitiveKey reports whether an attribute or JSON key names a secret.
func SensitiveKey(k string) bool {
	k = strings.ToLower(k)
	k = strings.NewReplacer("_", "", "-", "").Replace(k)
	if k == "key" || k == "auth" {
		return true
	}
	for _, s := range sensitiveKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

var (
	// A JWS compact serialisation: a base64url JSON header ("eyJ"), a
	// payload and a signature.
	jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)
	// Bearer and Basic credentials.
	bearerRE = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`)
	basicRE  = regexp.MustCompile(`(?i)(basic\s+)[A-Za-z0-9+/_-]{6,}=*`)
	// The userinfo of a URL: scheme://user:password@host.
	userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@"'<>]+@`)
	// Header lines whose whole value is a credential.
	headerRE = regexp.MustCompile(`(?i)((?:authorization|proxy-authorization|cookie|set-cookie)\s*:\s*)[^\r\n"]+`)
	// key=value and key: value pairs in URLs, forms and free text.
	pairRE = regexp.MustCompile(`(?i)((?:access_token|refresh_token|token|jwt|password|passwd|pass|pwd|secret|api_?key|apikey|access_?key|auth_?header|auth|session_?id|session|dsn|signature)["']?\s*[=:]\s*["']?)[^\s&"',;]+`)
)

// redactor holds the literal secrets to remove.
type redactor struct {
	secrets []string
}

func newRedactor(secrets []string) *redactor {
	r := &redactor{}
	for _, s := range secrets {
		// Very short values would redact ordinary words; sockmon's secrets
		// are at least 32 bytes.
		if len(s) >= 8 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// String redacts secrets inside s.
func (r *redactor) String(s string) string {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	return redactPatterns(s)
}

// redactPatterns redacts what the patterns find in s: JWTs, Bearer and
// Basic credentials, URL userinfo, credential parameters and header lines.
func redactPatterns(s string) string {
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, Redacted)
	}
	if strings.ContainsAny(s, "=:") || containsFold(s, "bearer") || containsFold(s, "basic") {
		s = bearerRE.ReplaceAllString(s, "${1}"+Redacted)
		s = basicRE.ReplaceAllString(s, "${1}"+Redacted)
		s = headerRE.ReplaceAllString(s, "${1}"+Redacted)
		s = userinfoRE.ReplaceAllString(s, "${1}"+Redacted+"@")
		s = pairRE.ReplaceAllString(s, "${1}"+Redacted)
	}
	return s
}

// RedactString returns s with every credential the patterns recognise
// replaced by Redacted (the handler's redaction minus the configured
// secrets, which it does not know): anything shaped like a JWT, Bearer and
// Basic credentials, URL userinfo, token=, password=, pwd=, session=,
// dsn=... values and Authorization or Cookie header lines. Safe for
// concurrent use.
func RedactString(s string) string { return redactPatterns(s) }

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}

// attr redacts one attribute.
func (r *redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return slog.Attr{Key: a.Key, Value: v}
	}
	if SensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, e := range g {
			out[i] = r.attr(e)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	}
	return slog.Attr{Key: a.Key, Value: r.any(v.Any())}
}

// any redacts a value of slog.KindAny: errors and Stringers by their
// text, JSON and everything else through its JSON form.
func (r *redactor) any(v any) slog.Value {
	var raw []byte
	switch x := v.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(r.String(x.Error()))
	case json.RawMessage:
		raw = x
	case []byte:
		if !json.Valid(x) {
			return slog.StringValue(r.String(string(x)))
		}
		raw = x
	case fmt.Stringer:
		return slog.StringValue(r.String(x.String()))
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return slog.StringValue(r.String(fmt.Sprint(x)))
		}
		raw = b
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return slog.StringValue(r.String(string(raw)))
	}
	out, err := json.Marshal(r.value(tree))
	if err != nil {
		return slog.StringValue(Redacted)
	}
	return slog.AnyValue(json.RawMessage(out))
}

// value redacts a decoded JSON value in place.
func (r *redactor) value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch e.(type) {
			case json.Number, bool, nil:
				continue
			}
			if SensitiveKey(k) {
				x[k] = Redacted
			} else {
				x[k] = r.value(e)
			}
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = r.value(e)
		}
		return x
	case string:
		return r.String(x)
	}
	return v
}

// redactHandler redacts every record and the attributes bound with
// WithAttrs, then hands them to next.
type redactHandler struct {
	next slog.Handler
	r    *redactor
}

func newRedactHandler(next slog.Handler, secrets []string) *redactHandler {
	return &redactHandler{next: next, r: newRedactor(secrets)}
}

func (h *redactHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.r.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.r.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(out), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), r: h.r}
}
