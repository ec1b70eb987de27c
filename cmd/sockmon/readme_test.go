package main

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/loadtest"
)

// The README stays honest where a machine can check it: the serve flag
// table against `sockmon serve --help`, the admin actions against
// control.Actions(), the subcommands against the binary, the flags the load
// section names against `sockmon load --help`, and its example against the
// server's default connection limits.

// readme returns the README, and section returns the text under a "## "
// heading up to the next one.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func section(t *testing.T, doc, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("README has no section %q", heading)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// tableRows returns the cells of the markdown table rows of text whose first
// cell starts with prefix.
func tableRows(text, prefix string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| "+prefix) {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), " | ") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

var backquotedRE = regexp.MustCompile("`([^`]+)`")

func backquoted(cell string) []string {
	var out []string
	for _, m := range backquotedRE.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

var serveHelpRE = regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \(default (.*), \$SOCKMON_[A-Z0-9_]+\)$`)

// Every flag of the README's serve table exists in `sockmon serve --help`
// (run with no SOCKMON_* variable) with the same default, and every flag
// of serve is in the table.
func TestREADMEServeFlagTable(t *testing.T) {
	help, _, code := runBinary(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	defaults := map[string]string{}
	for _, m := range serveHelpRE.FindAllStringSubmatch(help, -1) {
		defaults[m[1]] = strings.Trim(m[2], `"`)
	}
	if len(defaults) < 20 {
		t.Fatalf("serve --help lists %d flags; its format changed?\n%s", len(defaults), help)
	}
	rows := tableRows(section(t, readme(t), "`sockmon serve` flags"), "`--")
	inTable := map[string]bool{}
	for _, row := range rows {
		names := backquoted(row[0])
		values := strings.Split(row[1], ", ")
		if len(values) != len(names) {
			t.Errorf("README row %q: %d flags, %d defaults", row[0], len(names), len(values))
			continue
		}
		for i, name := range names {
			name = strings.TrimPrefix(name, "--")
			inTable[name] = true
			def, ok := defaults[name]
			if !ok {
				t.Errorf("README lists --%s, which sockmon serve does not have", name)
				continue
			}
			if want := strings.Trim(values[i], "`"); !sameDefault(want, def) {
				t.Errorf("--%s: README says default %q, serve --help %q", name, want, def)
			}
		}
	}
	for name := range defaults {
		if !inTable[name] {
			t.Errorf("sockmon serve --%s is not in the README's flag table", name)
		}
	}
	// --memory-limit's help and README row say the same about where the
	// limit comes from when it is 0 (GOMEMLIMIT; a cgroup only when one is
	// read).
	fs, _ := newServeFlagSet()
	usage := fs.Lookup("memory-limit").Usage
	for _, row := range rows {
		if row[0] == "`--memory-limit`" {
			for _, word := range []string{"GOMEMLIMIT", "cgroup"} {
				if strings.Contains(usage, word) != strings.Contains(row[2], word) {
					t.Errorf("--memory-limit: help %q and README %q disagree about %s", usage, row[2], word)
				}
			}
		}
	}
}

// sameDefault compares a README default with serve --help's: durations by
// value ("1m" is "1m0s"), and "off", "all" or "none" for an empty default.
func sameDefault(readme, help string) bool {
	if readme == help {
		return true
	}
	switch readme {
	case "off", "all", "none":
		return help == ""
	}
	a, err1 := time.ParseDuration(readme)
	b, err2 := time.ParseDuration(help)
	return err1 == nil && err2 == nil && a == b
}

// Every admin action of the README's table is one of control.Actions(),
// and every action is in the table; execute_command's row names its
// commands.
func TestREADMEAdminActions(t *testing.T) {
	ctl := section(t, readme(t), "The control side (default :8081)")
	_, actionsPart, _ := strings.Cut(ctl, "| action | data |")
	rows := tableRows(actionsPart, "`")
	named := map[string]bool{}
	for _, row := range rows {
		for _, name := range backquoted(row[0]) {
			named[name] = true
			if !slices.Contains(control.Actions(), name) {
				t.Errorf("README names admin action %q, which control.Actions() does not have", name)
			}
		}
		if row[0] == "`"+control.ActionExecuteCommand+"`" {
			for _, cmd := range []string{control.CommandBroadcast, control.CommandDisconnectAll, control.CommandEmergencyShutdown, control.EmergencyConfirm} {
				if !strings.Contains(row[1], cmd) {
					t.Errorf("README's execute_command row does not name %q", cmd)
				}
			}
			if !strings.Contains(row[1], "`command`") {
				t.Errorf("README's execute_command row does not name data.command")
			}
		}
	}
	for _, a := range control.Actions() {
		if !named[a] {
			t.Errorf("admin action %s is not in the README's table", a)
		}
	}
}

// The subcommands the README's repository map lists are the binary's.
func TestREADMESubcommands(t *testing.T) {
	repo := section(t, readme(t), "Repository")
	_, line, ok := strings.Cut(repo, "the binary: ")
	if !ok {
		t.Fatal("the README's repository map does not list the binary's subcommands")
	}
	line, _, _ = strings.Cut(line, " (")
	listed := strings.Split(line, ", ")
	var usage bytes.Buffer
	run([]string{"--help"}, &usage, io.Discard)
	_, cmds, _ := strings.Cut(usage.String(), "Commands:\n")
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	var binary []string
	for _, l := range strings.Split(cmds, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
			binary = append(binary, f[0])
		}
	}
	slices.Sort(listed)
	slices.Sort(binary)
	if !slices.Equal(listed, binary) {
		t.Errorf("README lists the subcommands %v, sockmon --help %v", listed, binary)
	}
	for _, cmd := range listed {
		var stderr bytes.Buffer
		if code := run([]string{cmd, "--help"}, io.Discard, &stderr); code == 2 && strings.Contains(stderr.String(), "unknown command") {
			t.Errorf("README lists subcommand %q, which sockmon does not have", cmd)
		}
	}
}

var flagTokenRE = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)

// Every flag the README's load section names exists: those of its example
// commands in `sockmon load`, the rest in load or in serve (the server
// flags a capacity run needs).
func TestREADMELoadFlags(t *testing.T) {
	var help bytes.Buffer
	if code := loadCommand([]string{"--help"}, &help, io.Discard); code != 0 {
		t.Fatalf("load --help: exit %d", code)
	}
	load := map[string]bool{"help": true}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		load[m[1]] = true
	}
	fs, _ := newServeFlagSet()
	text := section(t, readme(t), "`sockmon load`")
	example, prose := splitCode(text)
	for _, m := range flagTokenRE.FindAllStringSubmatch(example, -1) {
		if !load[m[1]] {
			t.Errorf("the README's sockmon load example uses --%s, which sockmon load does not have", m[1])
		}
	}
	for _, m := range flagTokenRE.FindAllStringSubmatch(prose, -1) {
		if !load[m[1]] && fs.Lookup(m[1]) == nil {
			t.Errorf("the README's load section names --%s, a flag of neither sockmon load nor sockmon serve", m[1])
		}
	}
}

// splitCode splits markdown into the text of its fenced code blocks and
// the rest.
func splitCode(text string) (code, prose string) {
	parts := strings.Split(text, "```")
	for i, p := range parts {
		if i%2 == 1 {
			code += p
		} else {
			prose += p
		}
	}
	return code, prose
}

// The README's load example fits sockmon serve's default limits: the
// connections per source address, dialled at --ramp, stay within
// --conn-burst plus --conn-rate per second over the ramp, and the messages
// per connection within --message-rate (issue 19: 18% of its handshakes got
// 429 at the default ramp).
func TestREADMELoadExampleFitsTheDefaultLimits(t *testing.T) {
	code, _ := splitCode(section(t, readme(t), "`sockmon load`"))
	cmdline := strings.Join(strings.Fields(strings.ReplaceAll(code, "\\\n", " ")), " ")
	arg := func(name, def string) string {
		if m := regexp.MustCompile(`--` + name + ` (\S+)`).FindStringSubmatch(cmdline); m != nil {
			return m[1]
		}
		return def
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("the README's load example: %q is not a number", s)
		}
		return v
	}
	conns, ramp, rate := num(arg("conns", "100")), num(arg("ramp", "1000")), num(arg("rate", "0"))
	sources := 1
	if spec := arg("sources", ""); spec != "" {
		addrs, err := loadtest.ParseSources(spec)
		if err != nil {
			t.Fatal(err)
		}
		sources = len(addrs)
	}
	fs, _ := newServeFlagSet()
	def := func(name string) float64 { return num(fs.Lookup(name).DefValue) }
	perSource := math.Ceil(conns / float64(sources))
	rampSeconds := conns / ramp
	if allowed := def("conn-burst") + def("conn-rate")*rampSeconds; perSource > allowed {
		t.Errorf("the README's load example dials %.0f connections per source address in %.2fs; sockmon serve's defaults admit %.0f "+
			"(--conn-burst %.0f + --conn-rate %.0f/s): lower --ramp or add sources", perSource, rampSeconds, allowed, def("conn-burst"), def("conn-rate"))
	}
	if rate == 0 || rate/conns > def("message-rate") {
		t.Errorf("the README's load example sends %.0f msg/s per connection; sockmon serve's default --message-rate is %.0f", rate/conns, def("message-rate"))
	}
}

var mdNameRE = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)

// Every Markdown file the README names is in the repository (a path as
// given, a bare name anywhere in the tree): it cited CONVENTIONS.md, which
// is not.
func TestREADMENamesOnlyFilesThatExist(t *testing.T) {
	root := filepath.Join("..", "..")
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		names[d.Name()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range mdNameRE.FindAllString(readme(t), -1) {
		if strings.Contains(name, "/") {
			if _, err := os.Stat(filepath.Join(root, name)); err != nil {
				t.Errorf("README names %s, which does not exist", name)
			}
		} else if !names[name] {
			t.Errorf("README names %s, which is nowhere in the repository", name)
		}
	}
}
