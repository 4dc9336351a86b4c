package pack

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/workload/spec"
)

// ErrVersionMismatch: a binary reports another version than the pack's.
var ErrVersionMismatch = errors.New("version mismatch")

// BuildOptions describes one pack to build.
type BuildOptions struct {
	// Version of the pack; the binaries must have been built with it.
	Version string
	// BinDir is what scripts/build.sh wrote: <goos>_<goarch>/molt-agent[.exe]
	// and molt-supervisor[.exe] per platform.
	BinDir string
	// Key signs the manifest.
	Key SecretKey
	// Floor, when set, is the lowest version agents may go to after seeing
	// this pack. It cannot be above Version.
	Floor string
	// Released is the release time (zero: now). It also stamps the zip
	// entries, so a pack's artifacts are reproducible.
	Released time.Time
	// Out is the pack file to write, atomically.
	Out string
	// Platforms ("linux/amd64") restricts the pack to these, each of which
	// must be present; empty means every platform found in BinDir.
	Platforms []string
	// SkipVersionCheck does not run the host platform's binaries to
	// confirm their version.
	SkipVersionCheck bool
	// Now is the clock for the signature's timestamp (nil: time.Now).
	Now func() time.Time
	// Workloads is the file of the workloads' specs (docs/workloads.md);
	// empty: BinDir/pack.yaml when it exists. Their files are the trees
	// BinDir/<goos>_<goarch>/workloads/<name>/.
	Workloads string
	// DeltaFrom are packs of earlier versions: the pack gets a binary
	// patch from each one's files to this version's (deltabuild.go).
	DeltaFrom []string
}

var platformDirRe = regexp.MustCompile(`^([a-z0-9]+)_([a-z0-9]+)$`)

// Build writes a signed pack of the binaries in opts.BinDir. The pack file
// appears only complete and verified: it is written to a temporary file
// beside opts.Out, checked, synced and renamed.
func Build(opts BuildOptions) error {
	if !ValidVersion(opts.Version) {
		return fmt.Errorf("build: version %q is not a valid version", opts.Version)
	}
	if opts.Floor != "" {
		if !ValidVersion(opts.Floor) {
			return fmt.Errorf("build: floor %q is not a valid version", opts.Floor)
		}
		if semver.Less(opts.Version, opts.Floor) {
			return fmt.Errorf("build: floor %s is above the pack's version %s", opts.Floor, opts.Version)
		}
	}
	if opts.Out == "" {
		return errors.New("build: no output file")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	released := opts.Released
	if released.IsZero() {
		released = now()
	}
	released = released.UTC().Truncate(time.Second)
	plats, err := findPlatforms(opts.BinDir, opts.Platforms)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	// The workloads are checked, specs and trees, before anything is
	// written.
	workloads, err := findWorkloads(opts, plats)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	var total int64
	entries := 2 // the manifest and its signature
	for _, p := range plats {
		for _, f := range p.files {
			total += f.size
			entries++
		}
		for _, t := range workloads[p.platform] {
			total += t.w.TreeSize()
			entries += len(t.w.Files)
		}
	}
	if total > DefaultMaxPackSize {
		return fmt.Errorf("build: %w: the files add up to %d bytes, the pack limit is %d", ErrTooLarge, total, DefaultMaxPackSize)
	}
	if entries > MaxEntries {
		return fmt.Errorf("build: %w: %d files, a pack holds at most %d", ErrTooLarge, entries, MaxEntries)
	}
	if !opts.SkipVersionCheck {
		for _, p := range plats {
			if p.platform != buildinfo.Platform() {
				continue
			}
			for _, f := range p.files {
				if err := checkBinaryVersion(f.src, "molt-"+f.role, opts.Version); err != nil {
					return fmt.Errorf("build: %w", err)
				}
			}
		}
	}
	older, err := openOlder(opts.DeltaFrom, opts.Version)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer closeOlder(older)
	return writeAtomic(opts.Out, func(w io.Writer) error {
		return writePack(w, plats, workloads, older, opts, released, now())
	}, func(tmp string) error {
		r, err := Open(tmp)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = r.VerifyAll([]Key{opts.Key.Public()})
		return err
	})
}

type platformFiles struct {
	platform string // goos/goarch
	dir      string // goos_goarch
	files    []roleFile
}

type roleFile struct {
	role, name, src string
	size            int64
}

// findPlatforms lists the platform directories of binDir with both
// binaries; a platform directory missing one is an error, not a skip, so a
// broken build is noticed before it ships.
func findPlatforms(binDir string, want []string) ([]platformFiles, error) {
	entries, err := os.ReadDir(binDir)
	if err != nil {
		return nil, fmt.Errorf("binaries: %w", err)
	}
	found := map[string]platformFiles{}
	for _, e := range entries {
		mm := platformDirRe.FindStringSubmatch(e.Name())
		if !e.IsDir() || mm == nil {
			continue
		}
		plat := mm[1] + "/" + mm[2]
		if len(want) > 0 && !slices.Contains(want, plat) {
			continue
		}
		exe := ""
		if mm[1] == "windows" {
			exe = ".exe"
		}
		p := platformFiles{platform: plat, dir: e.Name()}
		for _, role := range []string{RoleAgent, RoleSupervisor} {
			name := "molt-" + role + exe
			src := filepath.Join(binDir, e.Name(), name)
			st, err := os.Stat(src)
			if err != nil {
				return nil, fmt.Errorf("%s: no %s in %s", plat, name, filepath.Join(binDir, e.Name()))
			}
			if !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > MaxArtifactSize {
				return nil, fmt.Errorf("%s: %s is not a regular file of 1..%d bytes", plat, src, MaxArtifactSize)
			}
			p.files = append(p.files, roleFile{role: role, name: e.Name() + "/" + name, src: src, size: st.Size()})
		}
		found[plat] = p
	}
	for _, w := range want {
		if _, ok := found[w]; !ok {
			return nil, fmt.Errorf("%w: no %s directory in %s", ErrMissingPlatform, strings.Replace(w, "/", "_", 1), binDir)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no platform directories (<goos>_<goarch>/molt-agent) in %s; run scripts/build.sh VERSION %s first", binDir, binDir)
	}
	out := make([]platformFiles, 0, len(found))
	for _, p := range found {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b platformFiles) int { return strings.Compare(a.platform, b.platform) })
	return out, nil
}

// checkBinaryVersion runs "BIN version --json", which every molt binary
// answers, with a time limit, and checks which program and version it is.
func checkBinaryVersion(bin, program, version string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "version", "--json")
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s version --json: %w", bin, err)
	}
	var info buildinfo.Info
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return fmt.Errorf("%s version --json: %w", bin, err)
	}
	if info.Program != program {
		return fmt.Errorf("%w: %s says it is %q, not %s", ErrVersionMismatch, bin, info.Program, program)
	}
	if info.Version != version {
		return fmt.Errorf("%w: %s is version %s, the pack is %s", ErrVersionMismatch, bin, info.Version, version)
	}
	return nil
}

func writePack(w io.Writer, plats []platformFiles, workloads map[string][]workloadTree, older []*olderPack, opts BuildOptions, released, signedAt time.Time) error {
	zw := zip.NewWriter(w)
	m := Manifest{
		Version:   opts.Version,
		Released:  released,
		Floor:     opts.Floor,
		Artifacts: map[string]map[string]Artifact{},
	}
	var packed []packedFile
	for _, p := range plats {
		m.Artifacts[p.platform] = map[string]Artifact{}
		for _, f := range p.files {
			a, err := addFile(zw, f.name, f.src, 0o755, MaxArtifactSize, released)
			if err != nil {
				return err
			}
			m.Artifacts[p.platform][f.role] = a
			packed = append(packed, packedFile{a: a, src: f.src})
		}
		for _, t := range workloads[p.platform] {
			w := t.w
			w.Files = slices.Clone(w.Files)
			for i, f := range w.Files {
				a, err := addFile(zw, spec.PackPath(p.platform, w.Spec.Name, f.Path), t.srcs[i], fs.FileMode(f.Perm()), spec.MaxFileSize, released)
				if err != nil {
					return err
				}
				w.Files[i].Size, w.Files[i].SHA256 = a.Size, a.SHA256
				packed = append(packed, packedFile{a: a, src: t.srcs[i]})
			}
			if m.Workloads == nil {
				m.Workloads = map[string][]spec.Workload{}
			}
			m.Workloads[p.platform] = append(m.Workloads[p.platform], w)
		}
	}
	if err := addDeltas(zw, &m, packed, older, released); err != nil {
		return err
	}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	mb = append(mb, '\n')
	if _, err := ParseManifest(mb); err != nil {
		return err
	}
	if err := addBytes(zw, ManifestName, mb, released); err != nil {
		return err
	}
	if err := addBytes(zw, SignatureName, Sign(opts.Key, mb, signedAt), released); err != nil {
		return err
	}
	return zw.Close()
}

// addFile deflates file src into the pack as name, with mode perm, and
// returns what the manifest says of it.
func addFile(zw *zip.Writer, name, srcPath string, perm fs.FileMode, limit int64, mod time.Time) (Artifact, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return Artifact{}, err
	}
	defer src.Close()
	hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod}
	hdr.SetMode(perm)
	dst, err := zw.CreateHeader(hdr)
	if err != nil {
		return Artifact{}, err
	}
	h := sha256.New()
	// The size and hash are of the bytes actually packed, even if the file
	// changed since it was listed; the limit stops one that keeps growing.
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, limit+1))
	if err != nil {
		return Artifact{}, fmt.Errorf("pack %s: %w", srcPath, err)
	}
	if n > limit {
		return Artifact{}, fmt.Errorf("pack %s: %w: larger than %d bytes", srcPath, ErrTooLarge, limit)
	}
	return Artifact{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func addBytes(zw *zip.Writer, name string, b []byte, mod time.Time) error {
	hdr := &zip.FileHeader{Name: name, Method: zip.Store, Modified: mod}
	hdr.SetMode(0o644)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// writeAtomic writes path through fill into a temporary file in the same
// directory, runs check on the complete temporary file, then syncs and
// renames it into place. On any failure the temporary file is removed and
// path is untouched.
func writeAtomic(path string, fill func(io.Writer) error, check func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if check != nil {
		if err = check(tmp); err != nil {
			return fmt.Errorf("check the new pack: %w", err)
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}
