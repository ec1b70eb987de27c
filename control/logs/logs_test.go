package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// records decodes JSON lines.
func records(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func messages(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, r := range records(t, s) {
		out = append(out, r["msg"].(string))
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The combined file takes every line at the level, the error file warn and
// above, standard error the same as the combined file; the directory is
// created and the files are 0640 whatever the umask.
func TestOpenWritesLevelsToTheirFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "logs")
	combined, errs := filepath.Join(dir, "combined.log"), filepath.Join(dir, "error.log")
	var stderr lockedBuffer
	l, err := Open(Options{Level: slog.LevelInfo, Stderr: &stderr, File: combined, ErrorFile: errs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger.Debug("debug line")
	l.Logger.Info("info line")
	l.Logger.Warn("warn line")
	l.Logger.Error("error line")
	if got := strings.Join(messages(t, readFile(t, combined)), ","); got != "info line,warn line,error line" {
		t.Errorf("combined.log: %s", got)
	}
	if got := strings.Join(messages(t, readFile(t, errs)), ","); got != "warn line,error line" {
		t.Errorf("error.log: %s", got)
	}
	if got := strings.Join(messages(t, stderr.String()), ","); got != "info line,warn line,error line" {
		t.Errorf("stderr: %s", got)
	}
	for _, p := range []string{combined, errs} {
		if m := mode(t, p); m != FileMode {
			t.Errorf("%s: mode %o, want %o", p, m, FileMode)
		}
	}
	if m := mode(t, dir); m != DirMode {
		t.Errorf("log directory: mode %o, want %o", m, DirMode)
	}
	if got := l.Files(); len(got) != 2 || got[0] != combined || got[1] != errs {
		t.Errorf("Files() = %v", got)
	}
}

// An existing file with another mode is set to 0640; a debug level reaches
// the error file only from warn.
func TestOpenFixesModeAndKeepsErrorFloor(t *testing.T) {
	dir := t.TempDir()
	combined, errs := filepath.Join(dir, "combined.log"), filepath.Join(dir, "error.log")
	if err := os.WriteFile(combined, []byte("{\"msg\":\"old\"}\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(combined, 0o666)
	l, err := Open(Options{Level: slog.LevelDebug, Stderr: &lockedBuffer{}, File: combined, ErrorFile: errs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger.Debug("debug line")
	l.Logger.Warn("warn line")
	if m := mode(t, combined); m != FileMode {
		t.Errorf("existing combined.log: mode %o, want %o", m, FileMode)
	}
	if got := strings.Join(messages(t, readFile(t, combined)), ","); got != "old,debug line,warn line" {
		t.Errorf("combined.log appended: %s", got)
	}
	if got := strings.Join(messages(t, readFile(t, errs)), ","); got != "warn line" {
		t.Errorf("error.log at debug level: %s", got)
	}
}

// Rotate (SIGHUP) moves the file aside and opens a new one with the same
// mode; after logrotate moved it away, it opens the path afresh, 0640.
func TestRotate(t *testing.T) {
	dir := t.TempDir()
	combined := filepath.Join(dir, "combined.log")
	l, err := Open(Options{Stderr: &lockedBuffer{}, File: combined})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger.Info("before")
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Logger.Info("after")
	if got := strings.Join(messages(t, readFile(t, combined)), ","); got != "after" {
		t.Errorf("combined.log after Rotate: %s", got)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "combined-*.log"))
	if len(backups) != 1 || !strings.Contains(readFile(t, backups[0]), `"before"`) {
		t.Fatalf("backups after Rotate: %v", backups)
	}
	if m := mode(t, combined); m != FileMode {
		t.Errorf("after Rotate: mode %o", m)
	}

	// logrotate's way: the file is moved, then SIGHUP.
	if err := os.Rename(combined, combined+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Logger.Info("after logrotate")
	if got := strings.Join(messages(t, readFile(t, combined)), ","); got != "after logrotate" {
		t.Errorf("combined.log after logrotate and Rotate: %s", got)
	}
	if !strings.Contains(readFile(t, combined+".1"), `"after"`) {
		t.Error("the moved file lost its lines")
	}
	if m := mode(t, combined); m != FileMode {
		t.Errorf("file reopened after logrotate: mode %o, want %o", m, FileMode)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Options{MaxSizeMB: -1, Stderr: &lockedBuffer{}}); err == nil {
		t.Error("negative max size accepted")
	}
	dir := t.TempDir()
	same := filepath.Join(dir, "logs", "all.log")
	if _, err := Open(Options{Stderr: &lockedBuffer{}, File: same, ErrorFile: dir + "/logs/./all.log"}); err == nil {
		t.Error("one file as both the log file and the error log file accepted")
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Stderr: &lockedBuffer{}, File: filepath.Join(blocker, "combined.log")}); err == nil {
		t.Error("a log path under a regular file was accepted")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{MaxAgeDays: -1}
	o.setDefaults()
	if o.MaxSizeMB != DefaultMaxSizeMB || o.MaxBackups != DefaultMaxBackups || o.MaxAgeDays != -1 || o.Stderr == nil {
		t.Errorf("defaults: %+v", o)
	}
	rf, err := openFile(filepath.Join(t.TempDir(), "x.log"), &Options{MaxSizeMB: 5, MaxAgeDays: -1, MaxBackups: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rf.lj.MaxAge != 0 || rf.lj.MaxBackups != 0 || rf.lj.MaxSize != 5 {
		t.Errorf("negative limits must be lumberjack's 0 (no limit): %+v", rf.lj)
	}
}
