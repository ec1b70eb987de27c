package alerts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The rules file (--alerts-file), YAML or JSON (JSON is read as YAML), so
// that rules live in version control. Its rules win over stored rules of
// the same name; sockmon re-reads it on SIGHUP, and a file with an error
// changes nothing: the error names the line and the field, and the rules
// in force stay. Secrets are never in the file: a channel names the
// environment variable that holds each one.
//
//	rules:
//	  - name: high_error_rate
//	    metric: error_rate          # see Metrics()
//	    operator: ">"               # or comparison: gt
//	    threshold: 0.05
//	    forMs: 120000               # or duration: 120000
//	    level: warning              # or severity: warning
//	    description: more than 5% of messages fail
//	    runbookUrl: https://runbooks.example.com/sockmon/errors
//	    labels: {team: realtime}
//	    keepFiringForMs: 60000
//	    escalate: [{afterMs: 600000, level: critical}]
//	    remediation: notify_only    # shed_load; maintenance (emergency only)
//	    maxRemediationMs: 900000
//	    notify: [ops-slack]         # default: the routes of the level
//	channels:
//	  ops-slack: {type: slack, urlEnv: OPS_SLACK_WEBHOOK}
//	  ops-hook:  {type: webhook, url: https://hooks.example.com/sockmon, secretEnv: OPS_HOOK_SECRET}
//	  oncall:    {type: pagerduty, routingKeyEnv: ONCALL_ROUTING_KEY}
//	  mail:      {type: email, smtpAddr: "smtp.example.com:587", smtpUser: alerts, passwordEnv: SMTP_PASS,
//	              from: sockmon@example.com, to: [oncall@example.com]}
//	  am:        {type: alertmanager, urls: [http://alertmanager:9093]}
//	routes:
//	  critical: [ops-slack, oncall]
//	  emergency: ["*"]

// File is a parsed rules file.
type File struct {
	Rules    []Rule
	Channels []ChannelConfig
	Routes   map[Level][]string
	// Name is the file's base name, for messages.
	Name string
}

type fileDoc struct {
	Rules    []RuleInput             `yaml:"rules"`
	Channels map[string]*fileChannel `yaml:"channels"`
	Routes   map[string][]string     `yaml:"routes"`
}

type fileChannel struct {
	Type          string   `yaml:"type"`
	URL           string   `yaml:"url"`
	URLEnv        string   `yaml:"urlEnv"`
	URLs          []string `yaml:"urls"`
	SecretEnv     string   `yaml:"secretEnv"`
	RoutingKeyEnv string   `yaml:"routingKeyEnv"`
	SMTPAddr      string   `yaml:"smtpAddr"`
	SMTPUser      string   `yaml:"smtpUser"`
	PasswordEnv   string   `yaml:"passwordEnv"`
	From          string   `yaml:"from"`
	To            []string `yaml:"to"`
	// Refused: secrets come from the environment only.
	Secret     *string `yaml:"secret"`
	RoutingKey *string `yaml:"routingKey"`
	Password   *string `yaml:"password"`
}

// FileError is an error of a rules file: the file, the line (0 when
// unknown) and the field path ("rules[2].level").
type FileError struct {
	File    string
	Line    int
	Column  int
	Field   string
	Message string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString("alerts file ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// LoadFile reads and parses a rules file; see ParseFile.
func LoadFile(path string, getenv func(string) string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("alerts file: %w", err)
	}
	return ParseFile(filepath.Base(path), data, getenv)
}

// ParseFile parses a rules file named name, reading the secrets its
// channels name from getenv (nil: os.Getenv). The error is a *FileError
// naming the line and field of the first problem.
func ParseFile(name string, data []byte, getenv func(string) string) (*File, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	lines := map[string]int{}
	if f, err := parser.ParseBytes(data, 0); err == nil {
		for _, d := range f.Docs {
			keyPaths(d.Body, "", lines)
		}
	}
	fail := func(field, format string, args ...any) error {
		return &FileError{File: name, Line: lines[field], Field: field, Message: fmt.Sprintf(format, args...)}
	}
	var doc fileDoc
	if err := yaml.UnmarshalWithOptions(data, &doc, yaml.DisallowUnknownField()); err != nil {
		return nil, decodeError(name, lines, err)
	}
	out := &File{Name: name, Routes: map[Level][]string{}}
	seen := map[string]int{}
	for i := range doc.Rules {
		in := &doc.Rules[i]
		prefix := fmt.Sprintf("rules[%d]", i)
		if fe := ValidName(prefix+".name", in.Name); fe != nil {
			return nil, fail(fe.Field, "%s", fe.Message)
		}
		if j, dup := seen[in.Name]; dup {
			return nil, fail(prefix+".name", "%q is already the name of rules[%d]", in.Name, j)
		}
		seen[in.Name] = i
		r, fe := in.Apply(prefix, NewRule(in.Name), false)
		if fe != nil {
			return nil, fail(fe.Field, "%s", fe.Message)
		}
		r.UpdatedBy = "file " + name
		out.Rules = append(out.Rules, r)
	}
	chNames := make([]string, 0, len(doc.Channels))
	for n := range doc.Channels {
		chNames = append(chNames, n)
	}
	sort.Strings(chNames)
	for _, n := range chNames {
		c, err := fileChannelConfig(n, doc.Channels[n], getenv)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, fail(fe.Field, "%s", fe.Message)
			}
			return nil, fail("channels."+n, "%v", err)
		}
		out.Channels = append(out.Channels, c)
	}
	for l, chans := range doc.Routes {
		if !Level(l).Valid() {
			return nil, fail("routes."+l, "%q is not one of info, warning, critical, emergency", l)
		}
		for i, c := range chans {
			if c != "*" && !nameRE.MatchString(c) {
				return nil, fail(fmt.Sprintf("routes.%s[%d]", l, i), "%q: want a channel name or \"*\"", c)
			}
		}
		out.Routes[Level(l)] = slices.Clone(chans)
	}
	return out, nil
}

// fileChannelConfig builds a channel of the file, reading its secrets
// from the environment.
func fileChannelConfig(name string, f *fileChannel, getenv func(string) string) (ChannelConfig, error) {
	p := "channels." + name
	c := ChannelConfig{Name: name}
	if f == nil {
		return c, fieldErr(p, "empty: want at least a type")
	}
	switch {
	case f.Secret != nil:
		return c, fieldErr(p+".secret", "secrets are read from the environment: name the variable with secretEnv")
	case f.RoutingKey != nil:
		return c, fieldErr(p+".routingKey", "secrets are read from the environment: name the variable with routingKeyEnv")
	case f.Password != nil:
		return c, fieldErr(p+".password", "secrets are read from the environment: name the variable with passwordEnv")
	case f.Type == TypeSlack && f.URL != "":
		return c, fieldErr(p+".url", "a Slack webhook URL is a secret: name its environment variable with urlEnv")
	}
	env := func(field, v string) (string, error) {
		if v == "" {
			return "", nil
		}
		s := getenv(v)
		if s == "" {
			return "", fieldErr(p+"."+field, "the environment variable %s is not set", v)
		}
		return s, nil
	}
	var err error
	c.Type, c.URL, c.URLs, c.SMTPAddr, c.SMTPUser, c.From, c.To = f.Type, f.URL, f.URLs, f.SMTPAddr, f.SMTPUser, f.From, f.To
	if f.URLEnv != "" {
		if c.URL, err = env("urlEnv", f.URLEnv); err != nil {
			return c, err
		}
	}
	if c.Secret, err = env("secretEnv", f.SecretEnv); err != nil {
		return c, err
	}
	if c.RoutingKey, err = env("routingKeyEnv", f.RoutingKeyEnv); err != nil {
		return c, err
	}
	if c.SMTPPassword, err = env("passwordEnv", f.PasswordEnv); err != nil {
		return c, err
	}
	if err := c.validate(""); err != nil {
		field, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || field == "" {
			return c, fieldErr(p, "%v", err)
		}
		if field == "url" && f.URLEnv != "" {
			field = "urlEnv"
		}
		return c, fieldErr(p+"."+field, "%s", msg)
	}
	return c, nil
}

// CheckNotify verifies that every channel a rule of f names in notify is
// configured (among known, or the file's own channels).
func (f *File) CheckNotify(known []string) error {
	for i, r := range f.Rules {
		for j, c := range r.Notify {
			if !slices.Contains(known, c) && !slices.ContainsFunc(f.Channels, func(ch ChannelConfig) bool { return ch.Name == c }) {
				return &FileError{File: f.Name, Field: fmt.Sprintf("rules[%d].notify[%d]", i, j),
					Message: fmt.Sprintf("channel %q is not configured (configured: %s)", c, strings.Join(known, ", "))}
			}
		}
	}
	return nil
}

// decodeError words an error of the YAML decoder with the line, column
// and field.
func decodeError(name string, lines map[string]int, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return &FileError{File: name, Message: err.Error()}
	}
	tk := ye.GetToken()
	msg := ye.GetMessage()
	var te *yaml.TypeError
	if errors.As(err, &te) && te.DstType != nil {
		msg = fmt.Sprintf("%q: wrong type (want %s)", tk.Value, strings.TrimPrefix(te.DstType.String(), "*"))
	}
	return &FileError{File: name, Line: tk.Position.Line, Column: tk.Position.Column, Field: pathAt(lines, tk.Position.Line), Message: msg}
}

// pathAt is the deepest key path on line, or "".
func pathAt(lines map[string]int, line int) string {
	best := ""
	for p, l := range lines {
		if l == line && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// keyPaths records the line of every key and sequence item under n, by
// path ("rules[2].escalate[0].level").
func keyPaths(n ast.Node, prefix string, out map[string]int) {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			keyPaths(mv, prefix, out)
		}
	case *ast.MappingValueNode:
		if n.Key == nil || n.Key.GetToken() == nil {
			return
		}
		p := n.Key.GetToken().Value
		if prefix != "" {
			p = prefix + "." + p
		}
		out[p] = n.Key.GetToken().Position.Line
		keyPaths(n.Value, p, out)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if v != nil && v.GetToken() != nil {
				out[p] = v.GetToken().Position.Line
			}
			keyPaths(v, p, out)
		}
	case *ast.TagNode:
		keyPaths(n.Value, prefix, out)
	case *ast.AnchorNode:
		keyPaths(n.Value, prefix, out)
	}
}
