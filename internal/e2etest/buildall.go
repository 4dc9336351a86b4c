package e2etest

import (
	"os"
	"path/filepath"

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
