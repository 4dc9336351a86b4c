package e2etest

import (
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
// `go install module@version` with the test's own toolchain
// (runtime.GOROOT()/bin/go, CGO_ENABLED=0), into
// os.UserCacheDir()/molt-e2e/<name>-<version>/, and returns it. A binary
// built there by an earlier run is reused, so reruns are fast; the
// directory appears only complete (built beside it, then renamed).
func GoInstall(module, version string) (GoInstalled, error) {
	start := time.Now()
	name := path.Base(module)
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return GoInstalled{}, err
	}
	dir := filepath.Join(cacheRoot, "molt-e2e", sanitize(name+"-"+version))
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
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+sanitize(name+"-"+version)+"-")
	if err != nil {
		return GoInstalled{}, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(goBin, "install", module+"@"+version)
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
