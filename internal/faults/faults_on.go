//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moltfleet/molt/internal/buildinfo"
)

// Environment variables that arm a point; see the package documentation.
const (
	EnvPoint   = "MOLT_FAULT"
	EnvVersion = "MOLT_FAULT_VERSION"
	EnvOnce    = "MOLT_FAULT_ONCE"
)

// armed is the point this process dies at, read once from the
// environment.
type armed struct {
	name string
	hit  int // the hit that kills, from 1
	once string
}

var (
	loadOnce sync.Once
	target   armed
	mu       sync.Mutex
	hits     = map[string]int{}
)

// Parse reads a MOLT_FAULT value: a point name, optionally with
// "@N" for its N-th hit.
func Parse(v string) (name string, hit int, err error) {
	name, n, ok := strings.Cut(strings.TrimSpace(v), "@")
	hit = 1
	if ok {
		hit, err = strconv.Atoi(n)
		if err != nil || hit < 1 {
			return "", 0, fmt.Errorf("%s=%q: the hit after @ must be a positive number", EnvPoint, v)
		}
	}
	if name == "" {
		return "", 0, fmt.Errorf("%s=%q: no point named", EnvPoint, v)
	}
	return name, hit, nil
}

func load() {
	v := os.Getenv(EnvPoint)
	if v == "" {
		return
	}
	if want := os.Getenv(EnvVersion); want != "" && want != buildinfo.Version {
		return
	}
	name, hit, err := Parse(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return
	}
	target = armed{name: name, hit: hit, once: os.Getenv(EnvOnce)}
}

// Point kills the process when it is the armed point at its armed hit.
func Point(name string) {
	loadOnce.Do(load)
	if target.name != name {
		return
	}
	mu.Lock()
	hits[name]++
	n := hits[name]
	mu.Unlock()
	if n != target.hit {
		return
	}
	if target.once != "" {
		f, err := os.OpenFile(target.once, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return // fired before, in this process's predecessor
		}
		fmt.Fprintf(f, "%s pid %d version %s\n", name, os.Getpid(), buildinfo.Version)
		f.Sync()
		f.Close()
	}
	fmt.Fprintf(os.Stderr, "faults: kill -9 of pid %d at %s (hit %d)\n", os.Getpid(), name, n)
	kill()
}

// PointAfterFlush flushes w (an http.ResponseWriter) so that the client
// has its answer, and is then Point(name).
func PointAfterFlush(name string, w any) {
	loadOnce.Do(load)
	if target.name != name {
		return
	}
	// The controller also finds the Flush of a writer wrapped by
	// middleware (Unwrap).
	if rw, ok := w.(http.ResponseWriter); ok {
		_ = http.NewResponseController(rw).Flush()
	}
	Point(name)
}

// kill ends the process the hard way: os.Process.Kill is SIGKILL on Unix
// and TerminateProcess on Windows, so no deferred function, no handler
// and no buffered write runs.
func kill() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Kill()
	}
	// The signal is asynchronous: nothing may run past the point.
	for {
		time.Sleep(time.Hour)
	}
}
