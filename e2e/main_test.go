package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The two versions the fleet test moves between, and a bad one whose
// agent crashes at start (testdata/testagent), to be rolled back.
const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"
	badVersion = "1.2.0"
)

// build holds what TestMain made once for every test: binaries of both
// versions, a signing key pair and the new version's pack.
var build struct {
	dir    string
	oldBin string // directory with molt, molt-agent, molt-supervisor at oldVersion
	newBin string
	pubKey string
	secKey string
	pack   string // the pack of newVersion (molt pack build)
	// badPack is badVersion: an agent that crashes at start and the
	// newVersion supervisor.
	badPack string
	err     error
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "molt-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build.dir = dir
	build.err = buildAll(dir)
	code := m.Run()
	if code == 0 || os.Getenv("MOLT_E2E_KEEP") == "" {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: kept %s (MOLT_E2E_KEEP)\n", dir)
	}
	os.Exit(code)
}

func buildAll(dir string) error {
	start := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	plat := runtime.GOOS + "_" + runtime.GOARCH
	for _, v := range []struct{ version, out string }{{oldVersion, "old"}, {newVersion, "new"}} {
		cmd := exec.Command(filepath.Join(root, "scripts", "build.sh"), v.version, filepath.Join(dir, v.out))
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scripts/build.sh %s: %v\n%s", v.version, err, out)
		}
	}
	build.oldBin = filepath.Join(dir, "old", plat)
	build.newBin = filepath.Join(dir, "new", plat)
	molt := filepath.Join(build.newBin, "molt")
	keys := filepath.Join(dir, "keys")
	if out, err := exec.Command(molt, "pack", "keygen", "--out", keys, "--no-passphrase").CombinedOutput(); err != nil {
		return fmt.Errorf("molt pack keygen: %v\n%s", err, out)
	}
	build.secKey = filepath.Join(keys, "molt.key")
	build.pubKey = filepath.Join(keys, "molt.pub")
	build.pack = filepath.Join(dir, "molt-"+newVersion+".zip")
	if out, err := exec.Command(molt, "pack", "build", "--version", newVersion, "--bin-dir", filepath.Join(dir, "new"),
		"--key", build.secKey, "--out", build.pack).CombinedOutput(); err != nil {
		return fmt.Errorf("molt pack build: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad", plat)
	if err := os.MkdirAll(bad, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(bad, "molt-agent"), "-ldflags",
		"-X main.mode=crash-at-start -X github.com/moltfleet/molt/internal/buildinfo.Version="+badVersion, "./testdata/testagent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the crashing agent: %v\n%s", err, out)
	}
	sup, err := os.ReadFile(filepath.Join(build.newBin, "molt-supervisor"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bad, "molt-supervisor"), sup, 0o755); err != nil {
		return err
	}
	build.badPack = filepath.Join(dir, "molt-"+badVersion+".zip")
	if out, err := exec.Command(molt, "pack", "build", "--version", badVersion, "--bin-dir", filepath.Join(dir, "bad"),
		"--key", build.secKey, "--skip-version-check", "--out", build.badPack).CombinedOutput(); err != nil {
		return fmt.Errorf("molt pack build %s: %v\n%s", badVersion, err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s, %s and a crashing %s, and packed them in %s\n", oldVersion, newVersion, badVersion, time.Since(start).Round(time.Millisecond))
	return nil
}

// needBuild skips under -short and fails when the build failed.
func needBuild(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds and runs real binaries (skipped with -short)")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the fleet test drives Unix processes (kill -9, exec in place)")
	}
	if build.err != nil {
		t.Fatal(build.err)
	}
}
