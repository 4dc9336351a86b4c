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
	// ldflags stamp the version: molt's programs read it from
	// internal/buildinfo, the exporter from its main.version.
	ldflags string
}

// builds lists what the demo needs: molt itself (one copy: the server and
// the CLI), and for each release its molt-agent, molt-supervisor and the
// operator's workload, examples/exporter, in the tree "molt pack build
// --bin-dir" reads (<goos>_<goarch>/ and <goos>_<goarch>/workloads/exporter/).
// The broken release is built from the same sources: what breaks it is
// its pack.yaml (packYAML).
func builds(bin string) []target {
	plat := platformDir()
	exe := platform.ExeSuffix()
	stamp := "-X " + modulePath + "/internal/buildinfo.Version="
	ts := []target{{pkg: "./cmd/molt", version: NewVersion, out: filepath.Join(bin, "molt"+exe), ldflags: stamp + NewVersion}}
	for _, v := range releases {
		ts = append(ts,
			target{pkg: "./cmd/molt-agent", version: v, out: filepath.Join(bin, v, plat, "molt-agent"+exe), ldflags: stamp + v},
			target{pkg: "./cmd/molt-supervisor", version: v, out: filepath.Join(bin, v, plat, "molt-supervisor"+exe), ldflags: stamp + v},
			target{pkg: "./examples/exporter", version: v, out: filepath.Join(bin, v, plat, "workloads", workloadName, "exporter"+exe), ldflags: "-X main.version=" + v})
	}
	return ts
}

// workloadName is the workload every release carries.
const workloadName = "exporter"

// workloadReadyWithin bounds the exporter's ready check: the broken
// release's exporter is rolled back this long after its start.
const workloadReadyWithin = 10 * time.Second

// listenFile, in each home's data/exporter/, holds the address its
// exporter listens on. A pack's args are the same on every host, and the
// demo's three homes share one machine, so each gets its own port through
// its data directory, where per-host configuration lives.
const listenFile = "listen"

// packYAML is the workload spec of release v, for "molt pack build": the
// exporter, ready when it calls workload.Ready() (the "file" check: the
// port differs per home, so an http check with a fixed URL cannot be
// used). The broken release passes -fail-ready: its exporter starts and
// listens, but never says ready.
func packYAML(v string) string {
	args := `[-listen-file, ` + listenFile + `, -scan-every, "0"`
	note := "the exporter " + v + ", ready once it serves /metrics"
	if v == BadVersion {
		args += ", -fail-ready"
		note = "the broken release: its exporter never becomes ready (-fail-ready)"
	}
	args += "]"
	return fmt.Sprintf(`# molt demo %s: %s
workloads:
  - name: %s
    command: exporter
    args: %s
    ready: {file: true, within: %s}
    stop: {signal: SIGTERM, grace: %s}
`, v, note, workloadName, args, workloadReadyWithin, stopGrace)
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
			cmd := exec.CommandContext(ctx, gocmd, "build", "-ldflags", t.ldflags, "-o", t.out, t.pkg)
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
// time, and returns their paths by version. Each release's directory holds
// its binaries, its exporter and its pack.yaml. The release tool runs as
// its own process: a pack is tens of megabytes to hash and compress, which
// an instrumented test binary (-race) would take a minute over.
func makePacks(ctx context.Context, molt, bin, out string, k keys, env []string) (map[string]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	versions := releases
	paths := make([]string, len(versions))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, v := range versions {
		paths[i] = filepath.Join(out, "molt-"+v+".zip")
		g.Go(func() error {
			spec := filepath.Join(bin, v, "pack.yaml")
			if err := atomicfile.WriteFile(spec, []byte(packYAML(v)), 0o644); err != nil {
				return err
			}
			args := []string{"pack", "build", "--version", v, "--bin-dir", filepath.Join(bin, v), "--workloads", spec, "--key", k.sec, "--out", paths[i]}
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
