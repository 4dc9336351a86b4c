//go:build !windows

package updater

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// crashPoints are the updater's step boundaries, in order.
var crashPoints = []string{
	"manifest-verified", "downloaded-agent", "downloaded-supervisor", "verified",
	"staging-filled", "staging-renamed", "valid-written", "before-switch", "switched",
}

// TestCrashBetweenSteps kills a process (SIGKILL) at every step boundary
// of Prepare and Switch, checks that the home is sound, then runs the
// upgrade again: it finishes without downloading anything twice.
func TestCrashBetweenSteps(t *testing.T) {
	pub, sk := newKey(t)
	rel := newRelease(t, sk, "1.1.0", files("1.1.0", 150_000, 50_000), nil)
	pk := filepath.Join(t.TempDir(), "1.1.0.pack")
	rel.writePack(t, pk)
	for _, source := range []string{"http", "pack"} {
		for _, point := range crashPoints {
			t.Run(source+"/"+point, func(t *testing.T) {
				t.Parallel()
				h := testHome(t, t.TempDir())
				srv := newServer(t)
				base := srv.publish(rel)
				env := []string{envHome + "=" + h.Dir, envOrder + "=o", envVersion + "=1.1.0",
					envKey + "=" + pub.String(), envSwitch + "=1"}
				if source == "http" {
					env = append(env, envURL+"="+base)
				} else {
					env = append(env, envPack+"="+pk)
				}

				cmd := helperCmd(t, "upgrade", append(env, envCrashAt+"="+point)...)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Exited() {
					t.Fatalf("helper was not killed at %s: %v\n%s", point, err, out)
				}
				checkHomeInvariants(t, h)
				a, err := h.ReadActive()
				if err != nil {
					t.Fatal(err)
				}
				wantCurrent := "1.0.0"
				if point == "switched" {
					wantCurrent = "1.1.0"
				}
				if a.Current != wantCurrent {
					t.Errorf("after a crash at %s, current is %s, want %s", point, a.Current, wantCurrent)
				}

				cmd = helperCmd(t, "upgrade", env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("second run: %v\n%s", err, out)
				}
				checkHomeInvariants(t, h)
				a, err = h.ReadActive()
				if err != nil {
					t.Fatal(err)
				}
				if a.Current != "1.1.0" || a.Previous != "1.0.0" || a.Trial == nil || a.Trial.Order != "o" {
					t.Errorf("after the second run: %+v", a)
				}
				if st, err := New(testOptions(h, pub)).State(); err != nil || st.Phase != PhaseSwitched {
					t.Errorf("state %+v %v", st, err)
				}
				if source == "http" {
					for _, role := range []string{pack.RoleAgent, pack.RoleSupervisor} {
						if got, size := srv.servedBytes(srv.path(rel, role)), rel.artifact(role).Size; got != size {
							t.Errorf("%s: served %d bytes for a %d-byte file", role, got, size)
						}
					}
				}
				entries, _ := os.ReadDir(h.VersionsDir())
				for _, e := range entries {
					if !h.IsValid(e.Name()) {
						t.Errorf("versions/%s left behind without .valid", e.Name())
					}
				}
				if c := cacheEntries(t, h); len(c) != 0 {
					t.Errorf("cache left: %v", c)
				}
			})
		}
	}
}

// TestCrashWithWorkloads kills a process inside a workload's download and
// in staging: the home stays sound, nothing is valid half-staged, and the
// next run finishes the version with every workload file, each fetched
// once.
func TestCrashWithWorkloads(t *testing.T) {
	pub, sk := newKey(t)
	ws := []testWorkload{exporter()}
	rel := newWorkloadRelease(t, sk, "1.1.0", ws, nil)
	for _, point := range []string{"downloaded-workload/exporter/conf/default.yaml", "verified", "staging-filled", "staging-renamed"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			h := testHome(t, t.TempDir())
			srv := newServer(t)
			env := []string{envHome + "=" + h.Dir, envOrder + "=o", envVersion + "=1.1.0",
				envKey + "=" + pub.String(), envURL + "=" + srv.publish(rel)}
			out, err := helperCmd(t, "upgrade", append(env, envCrashAt+"="+point)...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Exited() {
				t.Fatalf("helper was not killed at %s: %v\n%s", point, err, out)
			}
			checkHomeInvariants(t, h)
			if h.IsValid("1.1.0") {
				t.Fatalf("1.1.0 is valid after a crash at %s", point)
			}
			if out, err := helperCmd(t, "upgrade", env...).CombinedOutput(); err != nil {
				t.Fatalf("second run: %v\n%s", err, out)
			}
			checkHomeInvariants(t, h)
			checkWorkloadInstalled(t, h, "1.1.0", ws)
			for _, f := range ws[0].files {
				// Files finished before the kill are served once; at a
				// download's checkpoint others may have been in flight
				// (fetched in parallel) and resumed.
				if dl, ok := strings.CutPrefix(point, "downloaded-workload/exporter/"); ok && dl != f.path {
					continue
				}
				p := "/1.1.0/" + spec.PackPath(testPlatform, "exporter", f.path)
				if got := srv.servedBytes(p); got != int64(len(f.data)) {
					t.Errorf("%s: served %d bytes for a %d-byte file", f.path, got, len(f.data))
				}
			}
			if c := cacheEntries(t, h); len(c) != 0 {
				t.Errorf("cache left: %v", c)
			}
		})
	}
}
