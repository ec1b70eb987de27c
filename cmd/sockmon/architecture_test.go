package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ARCHITECTURE.md stays true: every path it names in backquotes exists, and
// every Go package of the module is named in it.
func TestArchitectureMapIsTrue(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	tops := []string{"cmd", "netcore", "metrics", "control", "loadtest", "bench", "deploy", "third_party"}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_][a-z0-9_./-]*)`").FindAllStringSubmatch(string(doc), -1) {
		p := strings.TrimSuffix(m[1], "/")
		if !slices.Contains(tops, strings.Split(p, "/")[0]) {
			continue
		}
		named[p] = true
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("ARCHITECTURE.md names %s, which does not exist", p)
		}
	}
	// Every package of the module (bench/refservers is a module of its own).
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "third_party" || rel == "bench/refservers" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && !named[filepath.Dir(rel)] {
			named[filepath.Dir(rel)] = true // report each package once
			t.Errorf("package %s is not in ARCHITECTURE.md's map", filepath.Dir(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
