// Package logs is sockmon's logging: JSON lines (log/slog) on standard
// error and, for operators who expect the files of the system sockmon
// replaces, logs/combined.log and logs/error.log, rotated by size and age;
// every line redacted of tokens and secrets (redact.go); a connection_stats
// line at a fixed interval (stats.go); a line per closed connection, rate
// limited (closes.go).
//
// It depends on netcore only for the OnDisconnect event and on metrics for
// the snapshots; nothing here runs on the message path.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults, in one place.
const (
	DefaultMaxSizeMB  = 100
	DefaultMaxAgeDays = 30
	DefaultMaxBackups = 10

	// FileMode is the mode of the log files: the owner writes, its group
	// (log shippers, operators) reads.
	FileMode os.FileMode = 0o640
	// DirMode is the mode of a log directory Open creates.
	DirMode os.FileMode = 0o750
)

// Options configures Open. A zero field means the default; a negative
// MaxAgeDays or MaxBackups switches that limit off.
type Options struct {
	// Level is the lowest level written to standard error and File.
	Level slog.Level
	// Stderr receives every line at Level and above, as today. Default
	// os.Stderr.
	Stderr io.Writer
	// File is the combined log (every line at Level and above), e.g.
	// logs/combined.log; empty for none.
	File string
	// ErrorFile receives the lines at warn and above (at Level, if that is
	// higher), e.g. logs/error.log; empty for none.
	ErrorFile string
	// MaxSizeMB is the size at which a file is rotated. Default 100.
	MaxSizeMB int
	// MaxAgeDays removes rotated files older than this. Default 30.
	MaxAgeDays int
	// MaxBackups is how many rotated files of each log are kept. Default 10.
	MaxBackups int
	// Compress gzips rotated files.
	Compress bool
	// Secrets are literal values (the client and admin JWT secrets) replaced
	// wherever they appear in a line.
	Secrets []string
}

func (o *Options) setDefaults() {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.MaxSizeMB == 0 {
		o.MaxSizeMB = DefaultMaxSizeMB
	}
	if o.MaxAgeDays == 0 {
		o.MaxAgeDays = DefaultMaxAgeDays
	}
	if o.MaxBackups == 0 {
		o.MaxBackups = DefaultMaxBackups
	}
}

// Logs is an open set of log outputs. Its Logger is safe for concurrent
// use; Rotate and Close are too.
type Logs struct {
	// Logger writes to every output, redacted.
	Logger *slog.Logger
	files  []*rotatingFile
}

// rotatingFile is one log file under lumberjack.
type rotatingFile struct {
	path string
	lj   *lumberjack.Logger
}

// Open creates the log directories and files (FileMode, created or
// corrected) and returns the logger. Nothing is left open on an error.
func Open(o Options) (*Logs, error) {
	o.setDefaults()
	if o.MaxSizeMB < 0 {
		return nil, fmt.Errorf("logs: max size %d MB is negative", o.MaxSizeMB)
	}
	if o.File != "" && filepath.Clean(o.File) == filepath.Clean(o.ErrorFile) {
		// Two rotating writers on one file would rotate it under each other.
		return nil, fmt.Errorf("logs: the log file and the error log file are both %s", o.File)
	}
	l := &Logs{}
	handlers := []slog.Handler{slog.NewJSONHandler(o.Stderr, &slog.HandlerOptions{Level: o.Level})}
	for _, f := range []struct {
		path  string
		level slog.Level
	}{{o.File, o.Level}, {o.ErrorFile, max(o.Level, slog.LevelWarn)}} {
		if f.path == "" {
			continue
		}
		rf, err := openFile(f.path, &o)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		l.files = append(l.files, rf)
		handlers = append(handlers, slog.NewJSONHandler(rf.lj, &slog.HandlerOptions{Level: f.level}))
	}
	l.Logger = slog.New(newRedactHandler(multiHandler(handlers), o.Secrets))
	return l, nil
}

// openFile prepares path for lumberjack: its directory, and the file with
// FileMode (lumberjack creates new files 0600 and keeps the mode of the
// file it rotates, so the mode set here carries over to every rotation).
func openFile(path string, o *Options) (*rotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		return nil, fmt.Errorf("logs: create the directory of %s: %w", path, err)
	}
	if err := ensureMode(path); err != nil {
		return nil, err
	}
	lj := &lumberjack.Logger{Filename: path, MaxSize: o.MaxSizeMB, Compress: o.Compress,
		MaxAge: max(o.MaxAgeDays, 0), MaxBackups: max(o.MaxBackups, 0)}
	return &rotatingFile{path: path, lj: lj}, nil
}

// ensureMode creates path if needed and sets FileMode on it, whatever the
// umask.
func ensureMode(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, FileMode)
	if err != nil {
		return fmt.Errorf("logs: open %s: %w", path, err)
	}
	err = f.Chmod(FileMode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("logs: set the mode of %s: %w", path, err)
	}
	return nil
}

// Rotate closes each log file, moves it aside with a timestamp in its name
// (when it is still there: after logrotate moved it, this just reopens the
// path) and opens a new one. It is the SIGHUP handler's step for the logs.
func (l *Logs) Rotate() error {
	var errs []error
	for _, f := range l.files {
		if err := f.lj.Rotate(); err != nil {
			errs = append(errs, fmt.Errorf("logs: rotate %s: %w", f.path, err))
			continue
		}
		// A file created fresh (the old one was moved away) is 0600.
		if err := os.Chmod(f.path, FileMode); err != nil {
			errs = append(errs, fmt.Errorf("logs: set the mode of %s: %w", f.path, err))
		}
	}
	return errors.Join(errs...)
}

// Files lists the paths of the log files.
func (l *Logs) Files() []string {
	out := make([]string, len(l.files))
	for i, f := range l.files {
		out[i] = f.path
	}
	return out
}

// Close closes the log files (a line logged after Close opens them again:
// lumberjack reopens on write). The goroutine lumberjack starts to remove
// old files lives until the process exits (a limitation of lumberjack v2).
func (l *Logs) Close() error {
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.lj.Close())
	}
	return errors.Join(errs...)
}

// multiHandler sends each record to every handler that takes its level.
type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, level slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, level) {
			return true
		}
	}
	return false
}

func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range m {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (m multiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (m multiHandler) WithGroup(name string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(name)
	}
	return out
}
