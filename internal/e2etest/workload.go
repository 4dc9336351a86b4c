package e2etest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload/spec"
)

// Workload is one workload of a pack the harness builds: its spec and its
// tree, laid out as `molt pack build` takes it
// (<bin-dir>/<goos>_<goarch>/workloads/<name>/<path>, specs in
// <bin-dir>/pack.yaml).
type Workload struct {
	// Spec is the workload's spec as pack.yaml gives it (Files come from
	// the tree).
	Spec spec.Spec
	// Files maps a path inside the workload ("exporter", "bin/busy.sh")
	// to the file to put there. A file keeps its mode: an executable
	// source stays executable.
	Files map[string]string
}

// Exporter returns examples/exporter built at version (its -version and
// its exporter_build_info metric say it), once per test process.
func Exporter(tb testing.TB, version string) string {
	tb.Helper()
	p, err := once("exporter "+version, func(root string) (string, error) {
		out := filepath.Join(root, "exporter-"+version, exe("exporter"))
		return out, goBuild(out, version, []string{"main.version=" + version}, "./examples/exporter")
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// WriteScript writes an executable shell script into the test's temporary
// directory and returns its path (a file for Workload.Files).
func WriteScript(tb testing.TB, name, body string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// layWorkloads puts the workloads' trees under platDir/workloads/ and
// their specs into packYAML, the file pack.Build reads. A spec is written
// as JSON, which is YAML: the durations stay strings ("30s") as the
// spec's decoders want them.
func layWorkloads(platDir, packYAML string, ws []Workload) error {
	var b strings.Builder
	b.WriteString("# written by e2etest\nworkloads:\n")
	for _, w := range ws {
		for p, from := range w.Files {
			if !spec.SafePath(p) {
				return fmt.Errorf("workload %s: file %q: not a clean relative path", w.Spec.Name, p)
			}
			to := filepath.Join(platDir, "workloads", w.Spec.Name, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if err := copyFile(from, to); err != nil {
				return fmt.Errorf("workload %s: file %s: %w", w.Spec.Name, p, err)
			}
		}
		j, err := json.Marshal(w.Spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  - %s\n", j)
	}
	return os.WriteFile(packYAML, []byte(b.String()), 0o644)
}

// workloadsKey names a set of workloads in the build cache: their specs,
// and each file's path and source.
func workloadsKey(ws []Workload) string {
	if len(ws) == 0 {
		return ""
	}
	h := sha256.New()
	for _, w := range ws {
		j, _ := json.Marshal(w.Spec)
		h.Write(j)
		paths := make([]string, 0, len(w.Files))
		for p := range w.Files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			fmt.Fprintf(h, "\x00%s\x00%s", p, w.Files[p])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// WorkloadState reads state/workloads.json, what the supervisor runs (a
// zero state before it wrote one).
func (h *Host) WorkloadState() home.WorkloadState {
	h.tb.Helper()
	s, err := h.Home.ReadWorkloadState()
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.Name, err)
	}
	return s
}

// Workload returns workload name of state/workloads.json (ok false when
// the supervisor does not list it).
func (h *Host) Workload(name string) (home.WorkloadStatus, bool) {
	s, err := h.Home.ReadWorkloadState()
	if err != nil {
		return home.WorkloadStatus{}, false
	}
	for _, w := range s.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return home.WorkloadStatus{}, false
}

// WaitWorkload waits until workload name runs from version v (any
// version when v is "") in state st, and returns it.
func (h *Host) WaitWorkload(d time.Duration, name, v, st string) home.WorkloadStatus {
	h.tb.Helper()
	var w home.WorkloadStatus
	Eventually(h.tb, d, fmt.Sprintf("host %s: workload %s %s %s", h.Name, name, v, st), func() (bool, string) {
		var ok bool
		w, ok = h.Workload(name)
		if !ok {
			return false, "not in state/workloads.json"
		}
		running := w.Process.PID > 0 || (st != home.WorkloadStarting && st != home.WorkloadReady)
		return (v == "" || w.Version == v) && w.State == st && running, fmt.Sprintf("%+v", w)
	})
	return w
}

// DataFile is the path of file in workload name's data directory.
func (h *Host) DataFile(name, file string) string {
	return filepath.Join(h.Home.DataDir(name), filepath.FromSlash(file))
}

// Get does a GET of url with a short timeout and returns the status code
// and at most 1 MiB of the body (code 0 and the error text when it could
// not connect).
func Get(url string) (int, string) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}
