package e2etest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sync/errgroup"
)

// Build is one binary for BuildAll.
type Build struct {
	// Out is the file to write.
	Out string
	// Pkg is a package of the module: an import path or "./cmd/...".
	Pkg string
	// Version is stamped in as buildinfo.Version.
	Version string
	// Mode, when set, is testdata/testagent's mode (main.mode).
	Mode string
}

// BuildAll builds bs two at a time (CI has two cores) and returns the
// first error. It is for a TestMain that wants its binaries at paths of
// its own before any test runs; Binaries and TestAgent build lazily into
// the harness's cache instead.
func BuildAll(bs ...Build) error {
	var g errgroup.Group
	g.SetLimit(2)
	for _, b := range bs {
		g.Go(func() error {
			if err := os.MkdirAll(filepath.Dir(b.Out), 0o755); err != nil {
				return err
			}
			var x []string
			if b.Mode != "" {
				x = append(x, "main.mode="+b.Mode)
			}
			return goBuild(b.Out, b.Version, x, b.Pkg)
		})
	}
	return g.Wait()
}

// MainBuilt is Main for a package that builds into a directory of its own
// before any test runs: it makes a temporary directory (pattern as for
// os.MkdirTemp), calls build with it, runs the tests and removes the
// directory and what the harness built besides. A failed build fails the
// package with its error. Call it from TestMain: os.Exit(e2etest.MainBuilt(m, "x-test", build)).
func MainBuilt(m *testing.M, pattern string, build func(dir string) error) int {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	// What the harness itself built for the tests (Binaries, Pack, Key)
	// goes too.
	removeBuilds(code)
	return code
}
