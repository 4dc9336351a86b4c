package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinarySize is one shipped binary's size, and the size of the same build
// with its symbol table and DWARF (without -s -w), when measured.
type BinarySize struct {
	Platform   Platform
	Program    string
	Stripped   int64
	Unstripped int64 // 0: not measured
}

// BuildInfoPkg is where scripts/build.sh stamps the version and commit.
const BuildInfoPkg = "github.com/moltfleet/molt/internal/buildinfo"

// Sizes returns the size of every binary of plats in binDir and, when
// measure is set, builds each once more as scripts/build.sh does but
// without -s -w (into a temporary directory, removed afterwards) to show
// what stripping saves.
func Sizes(ctx context.Context, root, binDir, version, commit string, plats []Platform, measure bool) ([]BinarySize, error) {
	var tmp string
	if measure {
		var err error
		if tmp, err = os.MkdirTemp("", "molt-unstripped-*"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
	}
	var out []BinarySize
	for _, p := range plats {
		for _, prog := range Programs {
			st, err := os.Stat(p.Binary(binDir, prog))
			if err != nil {
				return nil, fmt.Errorf("%w: %s for %s: %w", ErrMissingBinary, prog, p, err)
			}
			s := BinarySize{Platform: p, Program: prog, Stripped: st.Size()}
			if measure {
				dst := filepath.Join(tmp, p.Dir(), p.Exe(prog))
				if s.Unstripped, err = buildUnstripped(ctx, root, version, commit, p, prog, dst); err != nil {
					return nil, err
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func buildUnstripped(ctx context.Context, root, version, commit string, p Platform, prog, dst string) (int64, error) {
	ldflags := "-X " + BuildInfoPkg + ".Version=" + version + " -X " + BuildInfoPkg + ".Commit=" + commit
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", dst, "./cmd/"+prog)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build %s for %s without -s -w: %w: %s", prog, p, err, strings.TrimSpace(string(b)))
	}
	st, err := os.Stat(dst)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// MiB formats n bytes as mebibytes with one decimal.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
