package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// envName is the environment variable for a flag: --max-conns is
// SOCKMON_MAX_CONNS.
func envName(flagName string) string {
	return "SOCKMON_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv parses args, then sets every flag not given on the command
// line from its SOCKMON_* environment variable. Command-line flags win.
func parseWithEnv(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("bad environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// flagUsage prints a FlagSet's flags with their defaults and env names.
func flagUsage(w io.Writer, fs *flag.FlagSet, synopsis string) func() {
	return func() {
		fmt.Fprintf(w, "Usage: %s\n\nFlags (each also as the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(w, "  --%s (default %s, $%s)\n      %s\n", f.Name, def, envName(f.Name), f.Usage)
		})
	}
}
