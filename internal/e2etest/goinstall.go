package e2etest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ErrNoModuleProxy is returned by GoInstall when the Go module proxy
// cannot be reached (GOPROXY=off, no network, no DNS): a test of a
// third-party program may skip then, outside CI.
var ErrNoModuleProxy = errors.New("the Go module proxy cannot be reached")

// GoInstalled is a program GoInstall built (or found built).
type GoInstalled struct {
	// Path is the binary.
	Path string
	// Cached is true when an earlier run had built it.
	Cached bool
	// Took is how long this call took (the build, or finding it).
	Took time.Duration
}

// GoInstall builds a program nobody here wrote from the Go module proxy,
// `go install [-ldflags LDFLAGS] module@version` with the test's own
// toolchain (runtime.GOROOT()/bin/go, CGO_ENABLED=0), into
// os.UserCacheDir()/molt-e2e/<name>-<version>[-<ldflags digest>]/, and
// returns it. A binary built there by an earlier run is reused, so reruns
// are fast; the directory appears only complete (built beside it, then
// renamed). ldflags stamps what the project's own release build would
// (e.g. "-X github.com/prometheus/common/version.Version=1.12.1").
func GoInstall(module, version, ldflags string) (GoInstalled, error) {
	start := time.Now()
	name := path.Base(module)
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return GoInstalled{}, err
	}
	key := name + "-" + version
	if ldflags != "" {
		sum := sha256.Sum256([]byte(ldflags))
		key += "-" + hex.EncodeToString(sum[:4])
	}
	dir := filepath.Join(cacheRoot, "molt-e2e", sanitize(key))
	bin := filepath.Join(dir, exe(name))
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o100 != 0 {
		return GoInstalled{Path: bin, Cached: true, Took: time.Since(start)}, nil
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", exe("go"))
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	if out, err := exec.Command(goBin, "env", "GOPROXY").Output(); err == nil && strings.TrimSpace(string(out)) == "off" {
		return GoInstalled{}, fmt.Errorf("%w: GOPROXY=off", ErrNoModuleProxy)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return GoInstalled{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+sanitize(key)+"-")
	if err != nil {
		return GoInstalled{}, err
	}
	defer os.RemoveAll(tmp)
	args := []string{"install"}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command(goBin, append(args, module+"@"+version)...)
	// Outside molt's module: go install pkg@version ignores the current
	// module anyway, and a neutral directory keeps any go.work out.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if networkFailure(string(out)) {
			return GoInstalled{}, fmt.Errorf("%w: go install %s@%s: %s", ErrNoModuleProxy, module, version, firstLines(string(out), 3))
		}
		return GoInstalled{}, fmt.Errorf("go install %s@%s: %v\n%s", module, version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process built it at the same time: use theirs.
		if _, serr := os.Stat(bin); serr != nil {
			return GoInstalled{}, err
		}
	}
	fmt.Fprintf(os.Stderr, "e2etest: go install %s@%s in %s\n", module, version, time.Since(start).Round(time.Millisecond))
	return GoInstalled{Path: bin, Took: time.Since(start)}, nil
}

// networkFailure reports whether go's output says it could not reach the
// module proxy (rather than a build that failed).
func networkFailure(out string) bool {
	for _, s := range []string{
		"dial tcp", "no such host", "connection refused", "network is unreachable", "i/o timeout",
		"TLS handshake timeout", "proxyconnect", "GOPROXY=off", "connection reset by peer",
		"server misbehaving", "temporary failure in name resolution",
	} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
			return true
		}
	}
	return false
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}
