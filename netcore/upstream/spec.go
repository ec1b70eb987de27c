package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
)

// Spec describes one upstream service. The zero value of every field but
// Name and URL means its default. Specs come from ParseFlag (--upstream
// NAME=URL), from ParseFile/LoadFile (--upstreams-file) or from Go code;
// Set.Reload validates them all at once.
type Spec struct {
	// Name is what rpc envelopes put in "service", and the upstream's name
	// in health, metrics and logs: 1 to 64 of A-Z a-z 0-9 _ . - starting
	// with a letter or digit.
	Name string

	// URL is where calls are POSTed: http or https, with a host, without
	// user info (credentials go in Headers). It is never shown in health
	// bodies, snapshots or error messages.
	URL string

	// Timeout bounds a whole call from Set.Call to its answer: time in the
	// queue, connecting, retries and reading the reply. Default 10 s.
	Timeout time.Duration

	// MaxConcurrent is the number of calls in flight to this upstream (its
	// worker goroutines and pooled connections). Default 32.
	MaxConcurrent int

	// MaxQueued is the number of calls that may wait for a worker; a call
	// beyond it is answered unavailable at once. Default 128.
	MaxQueued int

	// Retries is how many times a call is tried again after a failure that
	// proves the upstream never got the request: the connection was
	// refused or reset before the request was written. Other failures are
	// not retried (a POST may not be idempotent). Default 0; at most 5.
	Retries int

	// Fallback, when set, is the JSON value answered instead of an error
	// when the upstream is unavailable, times out, or answers something
	// unusable (see Result). Absent (or null in a file) means no fallback.
	Fallback json.RawMessage

	// Headers are added to every request. A value may refer to environment
	// variables as ${NAME} (for example "Bearer ${AI_API_KEY}"); they are
	// read when the Spec is loaded into a Set, and their values are never
	// logged, shown or put in an error. Content-Type, Content-Length, Host,
	// Connection, Transfer-Encoding and the X-Sockmon-* headers are set by
	// the Set and cannot be configured.
	Headers map[string]string

	// Critical makes an open breaker mark the node unhealthy (503) rather
	// than degraded (200): set it for an upstream without which the node
	// is useless to its clients.
	Critical bool

	// Breaker configures the upstream's circuit breaker; its Now and Rand
	// are ignored (the Set's Options provide them).
	Breaker breaker.Config

	// Source says where the Spec came from ("upstreams.yaml",
	// "--upstream ai"), for error messages.
	Source string

	// lines maps file keys ("timeout", "breaker.window") to their line in
	// Source, when the Spec was parsed from a file.
	lines map[string]int
}

// Defaults and limits of the Spec fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 32
	DefaultMaxQueued     = 128

	maxTimeout       = 10 * time.Minute
	maxMaxConcurrent = 10_000
	maxMaxQueued     = 1_000_000
	maxRetries       = 5
)

// Headers set by the Set on every request.
const (
	HeaderUserID   = "X-Sockmon-User-Id"
	HeaderSocketID = "X-Sockmon-Socket-Id"
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	envRefRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reserved = map[string]bool{
		"content-type": true, "content-length": true, "host": true, "connection": true,
		"transfer-encoding": true, strings.ToLower(HeaderUserID): true, strings.ToLower(HeaderSocketID): true,
	}
)

// ParseFlag parses the short form of --upstream, NAME=URL, into a Spec
// with every other field at its default. It checks the name and the URL;
// Set.Reload checks the rest.
func ParseFlag(s string) (Spec, error) {
	name, u, ok := strings.Cut(s, "=")
	if !ok || name == "" || u == "" {
		return Spec{}, fmt.Errorf("upstream: --upstream %q: want NAME=URL, such as ai=http://127.0.0.1:9000/rpc", s)
	}
	sp := Spec{Name: name, URL: u, Source: "--upstream " + name}
	var errs []error
	if msg := checkName(name); msg != "" {
		errs = append(errs, fmt.Errorf("upstream: --upstream %s: name: %s", name, msg))
	}
	if msg := checkURL(u); msg != "" {
		errs = append(errs, fmt.Errorf("upstream: --upstream %s: url: %s", name, msg))
	}
	return sp, errors.Join(errs...)
}

// Problem is one invalid field of one Spec. Field is the file key
// ("timeout", "headers.Authorization", "breaker.openMax"); Source is the
// Spec's Source, with the field's line when it came from a file
// ("upstreams.yaml:7").
type Problem struct {
	Upstream string
	Source   string
	Field    string
	Message  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		b.WriteString(": ")
	}
	if p.Upstream != "" {
		b.WriteString("upstream ")
		b.WriteString(strconv.Quote(p.Upstream))
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ConfigError lists every problem of a set of Specs or of an upstreams
// file. Reload, Validate and ParseFile return it; use errors.As for the
// list. It never contains a header value.
type ConfigError struct {
	Problems []Problem
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "upstream config: " + p.String()
	}
	return strings.Join(lines, "\n")
}

// header is one configured request header with its value resolved.
type header struct{ name, value string }

// resolved is a Spec with its defaults filled in and its header values
// read from the environment.
type resolved struct {
	Spec
	headers []header // sorted by name
}

// problems collects the Problems of one Spec.
type problems struct {
	sp   *Spec
	list []Problem
}

func (ps *problems) add(field, format string, args ...any) {
	src := ps.sp.Source
	if line, ok := ps.sp.lines[field]; ok && src != "" {
		src += ":" + strconv.Itoa(line)
	} else if line, ok := ps.sp.lines[""]; ok && src != "" {
		src += ":" + strconv.Itoa(line) // the upstream's own key
	}
	ps.list = append(ps.list, Problem{Upstream: ps.sp.Name, Source: src, Field: field, Message: fmt.Sprintf(format, args...)})
}

func checkName(name string) string {
	switch {
	case name == "*":
		return `"*" is reserved (it means every upstream in reset_circuit_breaker)`
	case !nameRE.MatchString(name):
		return fmt.Sprintf("%q: want 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit", name)
	}
	return ""
}

func checkURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case !strings.Contains(s, "://"):
		return fmt.Sprintf("%q has no scheme: want http://HOST[:PORT]/PATH or https://...", s)
	case err != nil:
		return "not a URL: " + strings.TrimPrefix(err.Error(), "parse "+strconv.Quote(s)+": ")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("scheme %q: want http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "no host"
	case u.User != nil:
		return "user info in the URL: put credentials in headers (values may read ${ENV_VARS})"
	case u.Fragment != "":
		return "a fragment is never sent; remove it"
	}
	return ""
}

// resolve fills in the defaults of sp and checks it, reading header values
// through lookupEnv (nil: leave them unresolved).
func resolve(sp Spec, lookupEnv func(string) (string, bool)) (resolved, []Problem) {
	ps := problems{sp: &sp}
	if msg := checkName(sp.Name); msg != "" {
		ps.add("name", "%s", msg)
	}
	if sp.URL == "" {
		ps.add("url", "required")
	} else if msg := checkURL(sp.URL); msg != "" {
		ps.add("url", "%s", msg)
	}
	switch {
	case sp.Timeout == 0:
		sp.Timeout = DefaultTimeout
	case sp.Timeout < time.Millisecond || sp.Timeout > maxTimeout:
		ps.add("timeout", "%v: want between 1ms and %v", sp.Timeout, maxTimeout)
	}
	switch {
	case sp.MaxConcurrent == 0:
		sp.MaxConcurrent = DefaultMaxConcurrent
	case sp.MaxConcurrent < 0 || sp.MaxConcurrent > maxMaxConcurrent:
		ps.add("maxConcurrent", "%d: want between 1 and %d", sp.MaxConcurrent, maxMaxConcurrent)
	}
	switch {
	case sp.MaxQueued == 0:
		sp.MaxQueued = DefaultMaxQueued
	case sp.MaxQueued < 0 || sp.MaxQueued > maxMaxQueued:
		ps.add("maxQueued", "%d: want between 1 and %d", sp.MaxQueued, maxMaxQueued)
	}
	if sp.Retries < 0 || sp.Retries > maxRetries {
		ps.add("retries", "%d: want between 0 and %d", sp.Retries, maxRetries)
	}
	if len(sp.Fallback) > 0 {
		var b bytes.Buffer
		if err := json.Compact(&b, sp.Fallback); err != nil {
			ps.add("fallback", "not valid JSON: %v", err)
		} else {
			sp.Fallback = b.Bytes()
		}
	}
	sp.Breaker.Now, sp.Breaker.Rand = nil, nil
	var ce *breaker.ConfigError
	if err := sp.Breaker.Validate(); errors.As(err, &ce) {
		for _, p := range ce.Problems {
			ps.add("breaker."+lowerFirst(p.Field), "%s", p.Message)
		}
	}

	r := resolved{Spec: sp}
	names := make([]string, 0, len(sp.Headers))
	for name := range sp.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		field := "headers." + name
		if msg := checkHeaderName(name); msg != "" {
			ps.add(field, "%s", msg)
			continue
		}
		value, msg := expand(sp.Headers[name], lookupEnv)
		if msg != "" {
			ps.add(field, "%s", msg)
			continue
		}
		r.headers = append(r.headers, header{name: name, value: value})
	}
	return r, ps.list
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func checkHeaderName(name string) string {
	if name == "" {
		return "empty header name"
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Sprintf("header name %q: character %q is not allowed", name, name[i])
		}
	}
	if reserved[strings.ToLower(name)] {
		return fmt.Sprintf("header %s is set by sockmon and cannot be configured", name)
	}
	return ""
}

// isTokenChar reports whether c may appear in an HTTP header name (RFC
// 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// expand replaces the ${NAME} references of a header value with the
// environment's values. With a nil lookupEnv it only checks the syntax.
// Messages name variables, never values.
func expand(tmpl string, lookupEnv func(string) (string, bool)) (string, string) {
	var b strings.Builder
	rest := tmpl
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return "", "unclosed ${ in the value"
		}
		name := rest[i+2 : i+end]
		if !envRefRE.MatchString(name) {
			return "", fmt.Sprintf("${%s}: not an environment variable name", name)
		}
		if lookupEnv != nil {
			v, ok := lookupEnv(name)
			if !ok {
				return "", fmt.Sprintf("environment variable %s is not set", name)
			}
			if v == "" {
				return "", fmt.Sprintf("environment variable %s is empty", name)
			}
			if hasCtl(v) {
				return "", fmt.Sprintf("environment variable %s holds a control character (a line break?)", name)
			}
			b.WriteString(v)
		}
		rest = rest[i+end+1:]
	}
	if hasCtl(tmpl) {
		return "", "the value holds a control character"
	}
	return b.String(), ""
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// Validate checks specs as Reload would, without loading them: every
// problem of every Spec at once, header references resolved through
// lookupEnv (nil: os.LookupEnv), duplicate names. It returns a
// *ConfigError or nil.
func Validate(specs []Spec, lookupEnv func(string) (string, bool)) error {
	if lookupEnv == nil {
		lookupEnv = osLookupEnv
	}
	_, err := resolveAll(specs, lookupEnv)
	return err
}

// sameSpec reports whether two resolved Specs configure the same upstream
// (where they came from aside).
func sameSpec(a, b resolved) bool {
	a.Source, b.Source = "", ""
	a.lines, b.lines = nil, nil
	return reflect.DeepEqual(a, b)
}

func osLookupEnv(name string) (string, bool) { return os.LookupEnv(name) }

func resolveAll(specs []Spec, lookupEnv func(string) (string, bool)) ([]resolved, error) {
	var (
		out  []resolved
		list []Problem
		seen = map[string]string{}
	)
	for _, sp := range specs {
		r, ps := resolve(sp, lookupEnv)
		list = append(list, ps...)
		if prev, dup := seen[sp.Name]; dup && sp.Name != "" {
			list = append(list, Problem{Upstream: sp.Name, Source: sp.Source, Message: "defined twice (also in " + prev + ")"})
		}
		src := sp.Source
		if src == "" {
			src = "an earlier Spec"
		}
		seen[sp.Name] = src
		out = append(out, r)
	}
	if len(list) > 0 {
		return nil, &ConfigError{Problems: list}
	}
	return out, nil
}
