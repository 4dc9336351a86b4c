//go:build unix

package e2etest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelperHang is the process TestQuitDumpsStacks stops: it waits in a
// function of its own, which the dump must name.
func TestHelperHang(t *testing.T) {
	if os.Getenv("E2ETEST_HELPER_HANG") == "" {
		t.Skip("run by TestQuitDumpsStacks")
	}
	os.Stdout.WriteString("hanging\n")
	hangHere()
}

func hangHere() { time.Sleep(time.Hour) }

// A server that hangs is stopped, when its test failed, with its
// goroutines in its log: the dump names the function it waits in.
func TestQuitDumpsStacks(t *testing.T) {
	log := filepath.Join(t.TempDir(), "hang.log")
	p, err := startProc(log, append(cleanEnv(), "E2ETEST_HELPER_HANG=1"), os.Args[0], "-test.run=^TestHelperHang$")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill9)
	for b, _ := os.ReadFile(log); !strings.Contains(string(b), "hanging"); b, _ = os.ReadFile(log) {
		if p.exited() {
			t.Fatalf("the helper exited:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.quit(10 * time.Second)
	if !p.exited() {
		t.Fatal("the process did not exit")
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "SIGQUIT: quit") || !strings.Contains(string(b), "e2etest.TestHelperHang") {
		t.Fatalf("no stack dump naming TestHelperHang in the log:\n%s", b)
	}
}
