package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Flags are written --name, as the README writes them (the flag package
// accepts -name too). --help prints to stdout and exits 0; a bad flag is
// reported on stderr with a pointer to --help and exits 2.

// envName is the environment variable for a flag: --max-conns is
// SOCKMON_MAX_CONNS.
func envName(flagName string) string {
	return "SOCKMON_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv parses args, then sets every flag not given on the command
// line from its SOCKMON_* environment variable. Command-line flags win.
// On -h or --help it returns flag.ErrHelp with the environment applied, so
// that the usage shows the values in force.
func parseWithEnv(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_ = applyEnv(fs, getenv)
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return applyEnv(fs, getenv)
}

// applyEnv sets every flag not given on the command line from its SOCKMON_*
// environment variable and reports every bad value at once.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := setOnCommandLine(fs)
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

func setOnCommandLine(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// envFlagUsage prints the flags of a command that reads SOCKMON_* variables
// (serve), each with the value in force and where it came from:
//
//	--max-conns (default 10000, $SOCKMON_MAX_CONNS)
//	--max-conns (500 from $SOCKMON_MAX_CONNS; built-in default 10000)
//	--max-conns (500 from the command line; built-in default 10000, $SOCKMON_MAX_CONNS)
func envFlagUsage(w io.Writer, fs *flag.FlagSet, synopsis string, getenv func(string) string) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags (each also as the environment variable shown; the command line wins):\n", synopsis)
	set := setOnCommandLine(fs)
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		var where string
		switch {
		case set[f.Name]:
			where = fmt.Sprintf("%s from the command line; built-in default %s, $%s", quoteEmpty(f.Value.String()), quoteEmpty(f.DefValue), env)
		case getenv(env) != "":
			where = fmt.Sprintf("%s from $%s; built-in default %s", quoteEmpty(f.Value.String()), env, quoteEmpty(f.DefValue))
		default:
			where = fmt.Sprintf("default %s, $%s", quoteEmpty(f.DefValue), env)
		}
		fmt.Fprintf(w, "  --%s (%s)\n      %s\n", f.Name, where, f.Usage)
	})
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// printFlags prints a FlagSet's flags in the --name form, with their
// argument names and defaults (false and empty defaults left out).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, usage)
	})
}

// newFlagSet returns a FlagSet for `sockmon name` that reports nothing
// itself: parseFlags and the commands say what went wrong, once.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args for a command without environment variables and
// without arguments. On --help it prints usage to stdout and returns 0 and
// done; on a bad flag or an argument it says so on stderr and returns 2 and
// done.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, usage func(io.Writer)) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return 0, true
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		badFlags(stderr, fs, err)
		return 2, true
	}
	return 0, false
}

// badFlags reports a command-line error of `sockmon <fs.Name()>`, naming
// flags in the --name form (the flag package writes -name).
func badFlags(stderr io.Writer, fs *flag.FlagSet, err error) {
	msg := strings.NewReplacer("not defined: -", "not defined: --", "for flag -", "for flag --", "needs an argument: -", "needs an argument: --").Replace(err.Error())
	fmt.Fprintf(stderr, "sockmon %s: %s\nRun 'sockmon %s --help' for its flags.\n", fs.Name(), msg, fs.Name())
}
