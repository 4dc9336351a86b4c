package e2e

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/moltfleet/molt/internal/e2etest"
)

// The two versions the fleet test moves between, and a bad one whose
// agent crashes at start (testdata/testagent), to be rolled back.
const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"
	badVersion = "1.2.0"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The long tests spend most of their time waiting on real processes
	// (a store down for a minute, a lease to expire, agents' backoff), not
	// computing: four at a time instead of one per core, longest first
	// (a quiet run's order), unless -parallel says otherwise.
	e2etest.LongestFirst(4,
		"TestS3Outage",     // a minute of store outage
		"TestReplicas",     // kill -9 of the leader, PostgreSQL restarted
		"TestWorkloadBusy", // two runs held while the host is busy
		"TestDeltaUpgrade",
		"TestWorkloadRollback",
		"TestFleet",
		"TestWorkloadNodeExporter",
		"TestMigrateStore",
		"TestWorkloadInstall",
	)
	os.Exit(e2etest.Main(m))
}

// parallel is e2etest.Parallel: t runs beside the others, in the order
// TestMain set.
func parallel(t *testing.T) {
	t.Helper()
	e2etest.Parallel(t)
}

// needBuild skips under -short and where the harness cannot drive the
// processes.
func needBuild(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds and runs real binaries (skipped with -short)")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the fleet test drives Unix processes (kill -9, exec in place)")
	}
}

// moltBin is the operator CLI at newVersion.
func moltBin(t *testing.T) string {
	return filepath.Join(e2etest.Binaries(t, newVersion), "molt")
}

// packs makes the two releases of the fleet test with molt pack build, as
// an operator does, signed with the harness's key: newVersion, and
// badVersion, whose agent crashes at start beside the newVersion
// supervisor.
func packs(t *testing.T) (good, bad string) {
	t.Helper()
	_, sec := e2etest.Key(t)
	dir := t.TempDir()
	newBin := e2etest.Binaries(t, newVersion)
	good = filepath.Join(dir, "molt-"+newVersion+".zip")
	if out, err := exec.Command(moltBin(t), "pack", "build", "--version", newVersion, "--bin-dir", filepath.Dir(newBin),
		"--key", sec, "--out", good).CombinedOutput(); err != nil {
		t.Fatalf("molt pack build: %v\n%s", err, out)
	}
	badBin := filepath.Join(dir, "bad", e2etest.PlatformDir())
	if err := os.MkdirAll(badBin, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range map[string]string{
		"molt-agent":      e2etest.TestAgent(t, badVersion, "crash-at-start"),
		"molt-supervisor": filepath.Join(newBin, "molt-supervisor"),
	} {
		if err := os.Link(src, filepath.Join(badBin, dst)); err != nil {
			t.Fatal(err)
		}
	}
	bad = filepath.Join(dir, "molt-"+badVersion+".zip")
	if out, err := exec.Command(moltBin(t), "pack", "build", "--version", badVersion, "--bin-dir", filepath.Dir(badBin),
		"--key", sec, "--skip-version-check", "--out", bad).CombinedOutput(); err != nil {
		t.Fatalf("molt pack build %s: %v\n%s", badVersion, err, out)
	}
	return good, bad
}
