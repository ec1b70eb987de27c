package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/control/dashboard"
	"github.com/sockmon/sockmon/netcore/protocol"
)

// The development set-up of `sockmon serve --dev` (what `make run` starts):
// with no SOCKMON_ADMIN_SECRET, an admin secret is generated once, kept in
// the data directory (mode 0600) and reused by the next --dev run, so the
// admin API works on a fresh clone; the run prints an admin token and the
// URLs to try. Without --dev nothing here runs: production without a secret
// keeps the admin API off (503).

// devSecretFile is the development admin secret's file in --data-dir.
const devSecretFile = "dev-admin-secret"

// devTokenTTL is the lifetime of the admin token a --dev run prints.
const devTokenTTL = time.Hour

// devAdminSecret returns the development admin secret kept in dataDir,
// creating it (32 random bytes, hex) on the first run. It refuses a file
// that others may read or that holds too short a secret rather than use
// it. created says whether this run made it.
func devAdminSecret(dataDir string) (secret, path string, created bool, err error) {
	path = filepath.Join(dataDir, devSecretFile)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("--dev: data dir: %w", err)
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", path, false, fmt.Errorf("--dev: %w", err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			return "", path, false, fmt.Errorf("--dev: %s has mode %04o, readable by others; chmod 600 it or delete it", path, m)
		}
		secret = strings.TrimSpace(string(b))
		if len(secret) < control.MinAdminSecretBytes {
			return "", path, false, fmt.Errorf("--dev: %s holds %d bytes, want at least %d; delete it to generate another", path, len(secret), control.MinAdminSecretBytes)
		}
		return secret, path, false, nil
	case errors.Is(err, fs.ErrNotExist):
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", path, false, fmt.Errorf("--dev: %w", err)
		}
		secret = hex.EncodeToString(raw[:])
		// O_EXCL: two --dev runs starting at once do not overwrite each
		// other's secret (the second fails on the store lock anyway).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", path, false, fmt.Errorf("--dev: create %s: %w", path, err)
		}
		_, err = io.WriteString(f, secret+"\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
			return "", path, false, fmt.Errorf("--dev: write %s: %w", path, err)
		}
		return secret, path, true, nil
	default:
		return "", path, false, fmt.Errorf("--dev: read %s: %w", path, err)
	}
}

// devSetup is what a --dev run tells its user.
type devSetup struct {
	// secretPath is the generated secret's file; empty when
	// SOCKMON_ADMIN_SECRET is set (and the file is not used).
	secretPath string
	created    bool
	// token is an admin token signed with the development secret; empty
	// when SOCKMON_ADMIN_SECRET is set.
	token string
}

// hostURL turns a listen address into one a browser on this host reaches:
// an unspecified host (":8081", "[::]:8081") becomes localhost.
func hostURL(scheme string, addr net.Addr, path string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + path
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + path
}

// printDevBanner writes the development set-up's summary to w.
func printDevBanner(w io.Writer, d devSetup, wsAddr, controlAddr net.Addr) {
	health := hostURL("http", controlAddr, control.PathHealth)
	fmt.Fprintf(w, "\nsockmon serve --dev: a DEVELOPMENT set-up, not for production.\n\n")
	if d.token != "" {
		how := "reused from"
		if d.created {
			how = "generated into"
		}
		fmt.Fprintf(w, "  admin secret  development only, %s %s (mode 0600);\n", how, d.secretPath)
		fmt.Fprintf(w, "                set SOCKMON_ADMIN_SECRET to use your own instead\n")
		fmt.Fprintf(w, "  admin token   %s\n", d.token)
		fmt.Fprintf(w, "                (expires in %s; another: SOCKMON_ADMIN_SECRET=$(cat %s) sockmon token --admin --sub dev)\n",
			strings.TrimSuffix(devTokenTTL.String(), "0m0s"), d.secretPath)
	} else {
		fmt.Fprintf(w, "  admin secret  from SOCKMON_ADMIN_SECRET (no development secret used);\n")
		fmt.Fprintf(w, "                mint a token with: sockmon token --admin --sub $USER\n")
	}
	fmt.Fprintf(w, "  WebSocket     %s\n", hostURL("ws", wsAddr, protocol.DefaultPath))
	fmt.Fprintf(w, "  health        %s\n", health)
	fmt.Fprintf(w, "  metrics       %s\n", hostURL("http", controlAddr, control.PathMetrics))
	fmt.Fprintf(w, "  dashboard     %s (sign in with the admin token)\n", hostURL("http", controlAddr, dashboard.DefaultPrefix))
	fmt.Fprintf(w, "  admin API     curl -H \"Authorization: Bearer $TOKEN\" %s\n\n", hostURL("http", controlAddr, control.PathAdmin))
}
