package dashboard

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
)

// maxPageGzipBytes is the budget of the whole page: HTML, scripts,
// styles, the chart library and the icon, gzipped.
const maxPageGzipBytes = 150 << 10

// The whole page, as a browser loads it (the HTML and every file it
// references, gzipped as the server sends them), is under 150 KB.
func TestPageWeight(t *testing.T) {
	f := newFixture(t)
	c, _ := f.session(control.AdminRole)
	page := f.do("GET", "/dashboard", nil, "Cookie: "+c)
	total := gzipLen(t, []byte(page.body))
	refs := regexp.MustCompile(`(?:src|href)="(/dashboard/static/[^"?]+)\?v=`).FindAllStringSubmatch(page.body, -1)
	if len(refs) < 5 {
		t.Fatalf("the page references %d static files: %s", len(refs), page.body)
	}
	for _, m := range refs {
		r := f.do("GET", m[1]+"?v=x", nil, "Accept-Encoding: gzip")
		if r.status != 200 || r.header.Get("Cache-Control") != "public, max-age=86400" {
			t.Fatalf("%s: %d %v", m[1], r.status, r.header)
		}
		// The client decoded it: count the gzipped bytes the server holds.
		a := f.dash.assets.files[strings.TrimPrefix(m[1], "/dashboard/static/")]
		total += len(a.gz)
		t.Logf("%-50s %6d bytes gzipped (%d plain)", m[1], len(a.gz), len(a.plain))
	}
	t.Logf("the whole page: %d bytes gzipped (budget %d)", total, maxPageGzipBytes)
	if total > maxPageGzipBytes {
		t.Fatalf("the page is %d bytes gzipped, over the %d budget", total, maxPageGzipBytes)
	}
	// The sign-in page needs no script at all.
	if login := f.do("GET", "/dashboard", nil); strings.Contains(login.body, "<script") {
		t.Fatal("the sign-in page loads a script")
	}
	if r := f.do("GET", "/dashboard/static/nope.js", nil); r.status != 404 {
		t.Fatalf("missing static file: %d", r.status)
	}
}

func gzipLen(t *testing.T, b []byte) int {
	t.Helper()
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Len()
}

// uplotDir is where make uplot puts the chart library.
const uplotDir = "static/vendor/uplot"

// pinnedUPlot is the Makefile's UPLOT_VERSION.
func pinnedUPlot(t *testing.T) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^UPLOT_VERSION\s*:=\s*(\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile pins no UPLOT_VERSION")
	}
	return string(m[1])
}

// The committed uPlot is the pinned version: its banner names it, and the
// files are the ones make uplot recorded (SHA256SUMS, written from the npm
// package of that version).
func TestUPlotMatchesPin(t *testing.T) {
	pin := pinnedUPlot(t)
	js, err := os.ReadFile(filepath.Join(uplotDir, "uPlot.iife.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "(v" + pin + ")"; !bytes.Contains(js[:min(len(js), 200)], []byte(want)) {
		t.Fatalf("uPlot.iife.min.js's banner %q does not name %s", js[:min(len(js), 80)], want)
	}
	sums, err := os.ReadFile(filepath.Join(uplotDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if lines[0] != "# uplot "+pin+" from npm (make uplot)" {
		t.Fatalf("SHA256SUMS is of %q, the Makefile pins %s: run make uplot", lines[0], pin)
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		sum, name, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", l)
		}
		b, err := os.ReadFile(filepath.Join(uplotDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s changed since make uplot (sha256 %x, recorded %s)", name, got, sum)
		}
		seen[name] = true
	}
	for _, name := range []string{"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"} {
		if !seen[name] {
			t.Errorf("SHA256SUMS does not cover %s", name)
		}
	}
}

// The committed files are byte for byte those of the pinned npm package.
// It needs npm and the registry: skipped without them, and with
// SOCKMON_SKIP_NPM=1.
func TestUPlotMatchesNPM(t *testing.T) {
	if os.Getenv("SOCKMON_SKIP_NPM") == "1" {
		t.Skip("SOCKMON_SKIP_NPM=1")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed")
	}
	pin := pinnedUPlot(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", "uplot@"+pin)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm pack uplot@%s: %v (registry unreachable?)\n%s", pin, err, out)
	}
	f, err := os.Open(filepath.Join(dir, "uplot-"+pin+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{"package/dist/uPlot.iife.min.js": "uPlot.iife.min.js", "package/dist/uPlot.min.css": "uPlot.min.css", "package/LICENSE": "LICENSE"}
	for name, b := range untar(t, f) {
		local, ok := want[name]
		if !ok {
			continue
		}
		have, err := os.ReadFile(filepath.Join(uplotDir, local))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, b) {
			t.Errorf("%s differs from %s in uplot@%s: run make uplot", local, name, pin)
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("uplot@%s has no %v", pin, want)
	}
}

// untar reads the regular files of a .tgz.
func untar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = b
		}
	}
}

// The page carries the actions the audit log can hold (every admin
// action, health details and the engine's remediations), which the
// command history's filter offers.
func TestPageListsActions(t *testing.T) {
	f := newFixture(t)
	c, _ := f.session(control.ViewerRole)
	page := f.do("GET", "/dashboard", nil, "Cookie: "+c)
	m := regexp.MustCompile(`<meta name="sockmon-actions" content="([^"]*)">`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no sockmon-actions meta in the page: %s", page.body)
	}
	got := strings.Fields(m[1])
	want := append(control.Actions(), control.ActionHealthDetails, control.ActionAlertRemediation)
	for _, a := range want {
		if !slices.Contains(got, a) {
			t.Errorf("the page's actions %v lack %s", got, a)
		}
	}
	if len(got) != len(want) || !slices.IsSorted(got) {
		t.Errorf("the page's actions %v: want the %d of %v, sorted", got, len(want), want)
	}
	for _, a := range []string{control.ActionAcknowledgeAlert, control.ActionSilenceAlerts, control.ActionExpireSilence} {
		if !slices.Contains(got, a) {
			t.Errorf("the page's actions lack the alert action %s", a)
		}
	}
}
