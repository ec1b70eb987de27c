package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/sockmon/sockmon/netcore/breaker"
)

// The upstreams file (--upstreams-file), YAML or JSON (JSON is read as
// YAML). Keys are the Spec fields in lowerCamelCase; durations are Go
// duration strings; unknown keys are errors.
//
//	upstreams:
//	  ai:
//	    url: http://127.0.0.1:9000/rpc
//	    timeout: 5s
//	    maxConcurrent: 32
//	    maxQueued: 128
//	    retries: 1
//	    critical: false
//	    fallback: {"text": "The assistant is unavailable right now."}
//	    headers:
//	      Authorization: Bearer ${AI_API_KEY}
//	    breaker:
//	      window: 10s
//	      buckets: 10
//	      minCalls: 20
//	      failureRatio: 0.5
//	      consecutiveFailures: 5
//	      openBase: 5s
//	      openMax: 60s
//	      jitter: 0.2
//	      halfOpenProbes: 1
//	      successStreak: 10

type fileDoc struct {
	Upstreams map[string]*fileSpec `yaml:"upstreams"`
}

type fileSpec struct {
	URL           string            `yaml:"url"`
	Timeout       string            `yaml:"timeout"`
	MaxConcurrent int               `yaml:"maxConcurrent"`
	MaxQueued     int               `yaml:"maxQueued"`
	Retries       int               `yaml:"retries"`
	Fallback      json.RawMessage   `yaml:"fallback"`
	Headers       map[string]string `yaml:"headers"`
	Critical      bool              `yaml:"critical"`
	Breaker       fileBreaker       `yaml:"breaker"`
}

type fileBreaker struct {
	Window              string  `yaml:"window"`
	Buckets             int     `yaml:"buckets"`
	MinCalls            int     `yaml:"minCalls"`
	FailureRatio        float64 `yaml:"failureRatio"`
	ConsecutiveFailures int     `yaml:"consecutiveFailures"`
	OpenBase            string  `yaml:"openBase"`
	OpenMax             string  `yaml:"openMax"`
	Jitter              float64 `yaml:"jitter"`
	HalfOpenProbes      int     `yaml:"halfOpenProbes"`
	SuccessStreak       int     `yaml:"successStreak"`
}

// LoadFile reads and parses an upstreams file; see ParseFile.
func LoadFile(path string) ([]Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("upstream config: %w", err)
	}
	return ParseFile(filepath.Base(path), data)
}

// ParseFile parses an upstreams file (YAML or JSON) named name and checks
// every Spec in it except the environment variables of header values
// (Reload reads those). Errors name the file, line and field: a syntax,
// type or unknown-key error is the first one met, as
// "upstreams.yaml:4:5: unknown field "tmeout""; otherwise a *ConfigError
// lists every invalid field with its line. The Specs are sorted by name;
// an empty file, or one without "upstreams", holds none.
func ParseFile(name string, data []byte) ([]Spec, error) {
	var doc fileDoc
	if err := yaml.UnmarshalWithOptions(data, &doc, yaml.DisallowUnknownField(), yaml.UseJSONUnmarshaler()); err != nil {
		return nil, decodeError(name, data, err)
	}
	lines := keyLines(data)
	names := make([]string, 0, len(doc.Upstreams))
	for n := range doc.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	var (
		specs []Spec
		list  []Problem
	)
	for _, n := range names {
		sp := Spec{Name: n, Source: name, lines: lines[n]}
		ps := problems{sp: &sp}
		f := doc.Upstreams[n]
		if f == nil {
			ps.add("", "empty: want at least a url")
			list = append(list, ps.list...)
			continue
		}
		dur := func(field, s string) time.Duration {
			if s == "" {
				return 0
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				ps.add(field, "%q: want a duration such as 500ms, 5s or 1m", s)
			}
			return d
		}
		sp.URL = f.URL
		sp.Timeout = dur("timeout", f.Timeout)
		sp.MaxConcurrent = f.MaxConcurrent
		sp.MaxQueued = f.MaxQueued
		sp.Retries = f.Retries
		sp.Fallback = f.Fallback
		sp.Headers = f.Headers
		sp.Critical = f.Critical
		b := f.Breaker
		sp.Breaker = breaker.Config{
			Window:              dur("breaker.window", b.Window),
			Buckets:             b.Buckets,
			MinCalls:            b.MinCalls,
			FailureRatio:        b.FailureRatio,
			ConsecutiveFailures: b.ConsecutiveFailures,
			OpenBase:            dur("breaker.openBase", b.OpenBase),
			OpenMax:             dur("breaker.openMax", b.OpenMax),
			Jitter:              b.Jitter,
			HalfOpenProbes:      b.HalfOpenProbes,
			SuccessStreak:       b.SuccessStreak,
		}
		list = append(list, ps.list...)
		_, more := resolve(sp, nil) // a duration that did not parse is 0 here: no second message
		list = append(list, more...)
		specs = append(specs, sp)
	}
	if len(list) > 0 {
		return nil, &ConfigError{Problems: list}
	}
	return specs, nil
}

// decodeError words an error of the YAML decoder with the file, line,
// column and, when the line holds one key, the field.
func decodeError(name string, data []byte, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return fmt.Errorf("upstream config: %s: %w", name, err)
	}
	tk := ye.GetToken()
	msg := ye.GetMessage()
	var te *yaml.TypeError
	if errors.As(err, &te) && te.DstType != nil {
		msg = fmt.Sprintf("%q: want %s", tk.Value, typeName(te.DstType))
	}
	var ue *yaml.UnknownFieldError
	if field := fieldAt(keyLines(data), tk.Position.Line); field != "" && !errors.As(err, &ue) {
		msg = field + ": " + msg
	}
	return fmt.Errorf("upstream config: %s:%d:%d: %s", name, tk.Position.Line, tk.Position.Column, msg)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a mapping"
	}
	return t.String()
}

// fieldAt names the one key on line ("upstream "ai": maxQueued"), or "".
func fieldAt(lines map[string]map[string]int, line int) string {
	found := ""
	for up, keys := range lines {
		for k, l := range keys {
			if l != line || k == "" {
				continue
			}
			if found != "" {
				return "" // several keys on the line (flow style): say none
			}
			found = "upstream " + strconv.Quote(up) + ": " + k
		}
	}
	return found
}

// keyLines maps each upstream's name to the lines of its keys: "" for the
// upstream's own key, "timeout", "headers.Authorization",
// "breaker.openMax"... It reads the same bytes that decoded without error,
// so it only has to skip what it does not expect.
func keyLines(data []byte) map[string]map[string]int {
	out := map[string]map[string]int{}
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 {
		return out
	}
	for _, top := range mappingValues(f.Docs[0].Body) {
		if keyText(top) != "upstreams" {
			continue
		}
		for _, up := range mappingValues(top.Value) {
			lines := map[string]int{"": line(up)}
			for _, field := range mappingValues(up.Value) {
				k := keyText(field)
				lines[k] = line(field)
				if k == "headers" || k == "breaker" {
					for _, sub := range mappingValues(field.Value) {
						lines[k+"."+keyText(sub)] = line(sub)
					}
				}
			}
			out[keyText(up)] = lines
		}
	}
	return out
}

func mappingValues(n ast.Node) []*ast.MappingValueNode {
	switch n := n.(type) {
	case *ast.MappingNode:
		return n.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{n}
	}
	return nil
}

func keyText(mv *ast.MappingValueNode) string {
	if mv.Key == nil || mv.Key.GetToken() == nil {
		return ""
	}
	return mv.Key.GetToken().Value
}

func line(mv *ast.MappingValueNode) int {
	if mv.Key == nil || mv.Key.GetToken() == nil {
		return 0
	}
	return mv.Key.GetToken().Position.Line
}
