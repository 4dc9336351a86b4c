// Package release makes a version's release artifacts from binaries built
// by scripts/build.sh: per platform a .tar.gz (.zip for Windows) of molt,
// molt-agent and molt-supervisor with the README; deb and rpm packages of
// the agent side (molt-agent) and of the server (molt-server) for Linux;
// a Windows MSI (wixl); and SHA256SUMS, signed in minisign's format with
// the release key. scripts/release.sh drives it; docs/packaging.md says
// what the packages install and who owns the binaries afterwards.
package release

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moltfleet/molt/updater/pack"
)

// Programs are the three binaries of a release, in the order they are
// listed.
var Programs = []string{"molt", "molt-agent", "molt-supervisor"}

// DefaultPlatforms are the platforms a release is made for when none is
// named.
var DefaultPlatforms = []string{"linux/amd64", "linux/arm64", "windows/amd64", "darwin/arm64"}

// ErrMissingBinary: the bin dir lacks a binary of a platform asked for.
var ErrMissingBinary = errors.New("missing binary")

// Options says what to make and from what.
type Options struct {
	Version string
	// BinDir holds the binaries in scripts/build.sh's layout:
	// BinDir/<goos>_<goarch>/<program>[.exe].
	BinDir string
	// Out is where the artifacts are written (created if missing).
	Out       string
	Platforms []string
	// Root is the module's root, for README.md (and a licence file,
	// should the project get one).
	Root string
	// MTime is every file's time inside the archives and packages, so
	// that the same commit gives the same bytes (the commit's time).
	MTime time.Time
	// Compression is the deb and rpm compression as nfpm names it
	// ("gzip:9", "xz", "zstd:19", "gzip:0" for none); empty is nfpm's
	// default for each format (gzip at its best for deb, gzip's default
	// for rpm), which releases use.
	Compression string
	// Wixl is the wixl program for the MSI; empty skips the MSI.
	Wixl string
	// Key signs SHA256SUMS; nil leaves it unsigned.
	Key *pack.SecretKey
	// Now is the signature's timestamp.
	Now time.Time
}

// Artifact is one file a release is made of.
type Artifact struct {
	Name   string // file name in Out
	Path   string
	Size   int64
	SHA256 string
}

// Platform is one GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

// ParsePlatform reads "linux/amd64".
func ParsePlatform(s string) (Platform, error) {
	goos, goarch, ok := strings.Cut(s, "/")
	if !ok || goos == "" || goarch == "" || strings.Contains(goarch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want GOOS/GOARCH, e.g. linux/amd64", s)
	}
	return Platform{goos, goarch}, nil
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Dir is the platform's directory in a bin dir: linux_amd64.
func (p Platform) Dir() string { return p.OS + "_" + p.Arch }

// Exe is program's file name on p.
func (p Platform) Exe(program string) string {
	if p.OS == "windows" {
		return program + ".exe"
	}
	return program
}

// Binary is the path of program for p under binDir.
func (p Platform) Binary(binDir, program string) string {
	return filepath.Join(binDir, p.Dir(), p.Exe(program))
}

// Licence is the module's licence file, which every archive and package
// carries.
const Licence = "LICENSE"

// docFiles returns README.md and the licence from root.
func docFiles(root string) ([]string, error) {
	var files []string
	for _, n := range []string{"README.md", Licence} {
		f := filepath.Join(root, n)
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("release documents: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// Make writes every artifact for o into o.Out and returns them in the
// order of SHA256SUMS, that file and its signature last.
func Make(o Options) ([]Artifact, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var plats []Platform
	for _, s := range o.Platforms {
		p, err := ParsePlatform(s)
		if err != nil {
			return nil, err
		}
		for _, prog := range Programs {
			if _, err := os.Stat(p.Binary(o.BinDir, prog)); err != nil {
				return nil, fmt.Errorf("%w: %s for %s: %w", ErrMissingBinary, prog, p, err)
			}
		}
		plats = append(plats, p)
	}
	var arts []Artifact
	add := func(a Artifact, err error) error {
		if err != nil {
			return err
		}
		arts = append(arts, a)
		return nil
	}
	for _, p := range plats {
		if err := add(Archive(o, p)); err != nil {
			return nil, fmt.Errorf("archive %s: %w", p, err)
		}
		if p.OS == "linux" && linuxArch(p.Arch) {
			for _, spec := range []PackageSpec{AgentPackage, ServerPackage} {
				for _, format := range []string{"deb", "rpm"} {
					if err := add(LinuxPackage(o, p, spec, format)); err != nil {
						return nil, fmt.Errorf("%s %s for %s: %w", format, spec.Name, p, err)
					}
				}
			}
		}
		if p.OS == "windows" && p.Arch == "amd64" && o.Wixl != "" {
			if err := add(MSI(o, p)); err != nil {
				return nil, fmt.Errorf("msi for %s: %w", p, err)
			}
		}
	}
	sort.Slice(arts, func(i, j int) bool { return arts[i].Name < arts[j].Name })
	sums, err := WriteSums(o, arts)
	if err != nil {
		return nil, err
	}
	return append(arts, sums...), nil
}

// linuxArch reports whether the deb and rpm packages are made for arch.
func linuxArch(arch string) bool { return arch == "amd64" || arch == "arm64" }

// fileArtifact describes the file at path.
func fileArtifact(path string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: filepath.Base(path), Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeFile creates path with fill, removing it again when fill fails.
func writeFile(path string, fill func(w io.Writer) error) (Artifact, error) {
	f, err := os.Create(path)
	if err != nil {
		return Artifact{}, err
	}
	if err := fill(f); err != nil {
		f.Close()
		os.Remove(path)
		return Artifact{}, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return Artifact{}, err
	}
	return fileArtifact(path)
}
