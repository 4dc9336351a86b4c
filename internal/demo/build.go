package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater/pack"
)

// modulePath is the module the demo builds; it must be run from inside it.
const modulePath = "github.com/moltfleet/molt"

// ErrNotInRepository means no go.mod of the molt module was found above
// the working directory.
var ErrNotInRepository = errors.New("not inside the molt repository")

// FindModuleRoot walks up from dir to the directory whose go.mod declares
// the molt module.
func FindModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if mod, err := readModulePath(filepath.Join(dir, "go.mod")); err == nil && mod == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod with module %s in this directory or above it; run the demo from a checkout of molt (git clone, then go run ./cmd/molt demo)", ErrNotInRepository, modulePath)
		}
		dir = parent
	}
}

// readModulePath returns the module line of a go.mod file.
func readModulePath(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", path)
}

// target is one binary to build.
type target struct {
	pkg     string // package path relative to the module root
	version string
	out     string
	// mode is the testagent's behaviour (-X main.mode); empty for the
	// real programs.
	mode string
}

// builds lists what the demo needs: the two good releases' agent and
// supervisor, molt itself (one copy: the server and the CLI), and the
// broken release: the test agent that crashes at start with a real
// supervisor of the same version.
func builds(bin string) []target {
	plat := platformDir()
	exe := platform.ExeSuffix()
	var ts []target
	ts = append(ts, target{pkg: "./cmd/molt", version: NewVersion, out: filepath.Join(bin, "molt"+exe)})
	for _, v := range []string{OldVersion, NewVersion} {
		ts = append(ts,
			target{pkg: "./cmd/molt-agent", version: v, out: filepath.Join(bin, v, plat, "molt-agent"+exe)},
			target{pkg: "./cmd/molt-supervisor", version: v, out: filepath.Join(bin, v, plat, "molt-supervisor"+exe)})
	}
	ts = append(ts,
		target{pkg: "./testdata/testagent", version: BadVersion, mode: "crash-at-start", out: filepath.Join(bin, BadVersion, plat, "molt-agent"+exe)},
		target{pkg: "./cmd/molt-supervisor", version: BadVersion, out: filepath.Join(bin, BadVersion, plat, "molt-supervisor"+exe)})
	return ts
}

// platformDir is the directory name scripts/build.sh and pack.Build use
// for this machine's platform.
func platformDir() string { return runtime.GOOS + "_" + runtime.GOARCH }

// goTool finds the go command: the one on PATH (go run put it there), or
// the one of the toolchain this program was built with.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go"+platform.ExeSuffix())
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("the go command is not on PATH: install Go (https://go.dev/dl) and run the demo with go run ./cmd/molt demo")
	}
	return p, nil
}

// buildAll builds every target, two at a time. Only -ldflags -X differs
// from a plain go build (or go run), and -X is applied by the linker, so a
// warm build cache leaves just the links to do.
func buildAll(ctx context.Context, root string, ts []target, env []string) error {
	gocmd, err := goTool()
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, t := range ts {
		g.Go(func() error {
			ld := "-X " + modulePath + "/internal/buildinfo.Version=" + t.version
			if t.mode != "" {
				ld += " -X main.mode=" + t.mode
			}
			cmd := exec.CommandContext(ctx, gocmd, "build", "-ldflags", ld, "-o", t.out, t.pkg)
			cmd.Dir = root
			// Interrupted, go build stops its compilers and linker itself.
			cmd.Cancel = func() error {
				if runtime.GOOS == "windows" {
					return cmd.Process.Kill()
				}
				return cmd.Process.Signal(os.Interrupt)
			}
			cmd.WaitDelay = 5 * time.Second
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("go build %s at %s: %w\n%s", t.pkg, t.version, err, bytes.TrimSpace(out.Bytes()))
			}
			return nil
		})
	}
	return g.Wait()
}

// keys are the signing key pair's files.
type keys struct {
	secret pack.SecretKey
	pub    string // path of the public key file
	sec    string // path of the secret key file (0600)
}

// makeKey generates the release signing key. It is unencrypted: it lives
// only as long as the demo's directory.
func makeKey(dir string) (keys, error) {
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		return keys{}, err
	}
	secText, err := pack.MarshalSecretKey(sec, "", pack.CostInteractive)
	if err != nil {
		return keys{}, fmt.Errorf("encode the secret key: %w", err)
	}
	pubText, err := pub.MarshalText()
	if err != nil {
		return keys{}, fmt.Errorf("encode the public key: %w", err)
	}
	k := keys{secret: sec, pub: filepath.Join(dir, "molt.pub"), sec: filepath.Join(dir, "molt.key")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return keys{}, err
	}
	if err := atomicfile.WriteFile(k.sec, secText, 0o600); err != nil {
		return keys{}, fmt.Errorf("write the secret key: %w", err)
	}
	if err := atomicfile.WriteFile(k.pub, pubText, 0o644); err != nil {
		return keys{}, fmt.Errorf("write the public key: %w", err)
	}
	return k, nil
}

// makePacks signs one pack per version with "molt pack build", two at a
// time, and returns their paths by version. The release tool runs as its
// own process: a pack is tens of megabytes to hash and compress, which an
// instrumented test binary (-race) would take a minute over.
func makePacks(ctx context.Context, molt, bin, out string, k keys, env []string) (map[string]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	versions := []string{OldVersion, NewVersion, BadVersion}
	paths := make([]string, len(versions))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, v := range versions {
		paths[i] = filepath.Join(out, "molt-"+v+".zip")
		g.Go(func() error {
			args := []string{"pack", "build", "--version", v, "--bin-dir", filepath.Join(bin, v), "--key", k.sec, "--out", paths[i]}
			if v == BadVersion {
				// The broken agent is a test program: it does not answer
				// "version --json" as molt-agent does.
				args = append(args, "--skip-version-check")
			}
			cmd := exec.CommandContext(ctx, molt, args...)
			cmd.Env = env
			var b bytes.Buffer
			cmd.Stdout, cmd.Stderr = &b, &b
			if err := cmd.Run(); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("molt pack build %s: %w\n%s", v, err, bytes.TrimSpace(b.Bytes()))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	packs := map[string]string{}
	for i, v := range versions {
		packs[v] = paths[i]
	}
	return packs, nil
}
