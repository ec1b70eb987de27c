package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sockmon/sockmon/netcore/breaker"
	"github.com/sockmon/sockmon/netcore/upstream"
)

// upstreamFlags collects --upstream NAME=URL, repeatable; one value may
// also hold several, separated by spaces (so that SOCKMON_UPSTREAM can name
// more than one).
type upstreamFlags []string

func (u *upstreamFlags) String() string { return strings.Join(*u, " ") }

func (u *upstreamFlags) Set(v string) error {
	for _, f := range strings.Fields(v) {
		if _, err := upstream.ParseFlag(f); err != nil {
			return err
		}
		*u = append(*u, f)
	}
	return nil
}

// upstreamSpecs reads the upstreams of the flags and of file (when set). A
// name defined in both is an error: which one would win is not obvious.
func upstreamSpecs(flags []string, file string) ([]upstream.Spec, error) {
	var specs []upstream.Spec
	for _, f := range flags {
		s, err := upstream.ParseFlag(f)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	if file == "" {
		return specs, nil
	}
	fromFile, err := upstream.LoadFile(file)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range fromFile {
		for _, f := range specs {
			if f.Name == s.Name {
				errs = append(errs, fmt.Errorf("upstream %q is defined by --upstream and in %s: define it once", s.Name, file))
			}
		}
	}
	return append(specs, fromFile...), errors.Join(errs...)
}

// loadUpstreams (re)loads the upstreams into set. On an error the running
// set is untouched: at start that stops the server, at SIGHUP the old
// upstreams stay in force and the error is logged.
func loadUpstreams(set *upstream.Set, flags []string, file string) error {
	specs, err := upstreamSpecs(flags, file)
	if err != nil {
		return err
	}
	return set.Reload(specs)
}

// logBreakerChanges logs one line per circuit-breaker transition: a warning
// when a breaker opens, info otherwise.
func logBreakerChanges(set *upstream.Set, log *slog.Logger) {
	set.OnBreakerChange(func(e breaker.Event) {
		level := slog.LevelInfo
		if e.To == breaker.Open {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "circuit breaker", "breaker", e.Name, "from", e.From.String(), "to", e.To.String(),
			"reason", string(e.Reason), "failures", e.Failures, "calls", e.Calls, "lastError", e.LastErrorClass, "openFor", e.OpenFor.String())
	})
}
