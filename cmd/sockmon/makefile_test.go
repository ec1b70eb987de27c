package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// `make bench` on a fresh clone: bin/ does not exist yet, and the recipe
// must create it before tee writes bin/bench.txt. GO=echo stands in for the
// benchmarks themselves.
func TestMakeBenchCreatesBin(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	bin := filepath.Join(t.TempDir(), "fresh", "bin")
	cmd := exec.Command("make", "-s", "bench", "GO=echo", "BIN="+bin)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make bench on a tree without %s: %v\n%s", bin, err, out)
	}
	if fi, err := os.Stat(filepath.Join(bin, "bench.txt")); err != nil || fi.Size() == 0 {
		t.Fatalf("bench.txt not written: %v", err)
	}
}
