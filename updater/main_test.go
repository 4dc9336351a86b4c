package updater

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
)

// The test binary doubles as the process that is killed mid-upgrade: with
// MOLT_UPDATER_HELPER set it runs one Prepare (and Switch) and exits.
// Only this test binary reads these variables; the agent never does.
const (
	envHelper  = "MOLT_UPDATER_HELPER"
	envHome    = "MOLT_UPDATER_HOME"
	envURL     = "MOLT_UPDATER_URL"
	envPack    = "MOLT_UPDATER_PACK"
	envOrder   = "MOLT_UPDATER_ORDER"
	envVersion = "MOLT_UPDATER_VERSION"
	envKey     = "MOLT_UPDATER_KEY"
	envCrashAt = "MOLT_UPDATER_CRASH_AT"
	envSwitch  = "MOLT_UPDATER_SWITCH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(m.Run())
	case "upgrade":
		if err := helperUpgrade(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		if err := otherHelper(os.Getenv(envHelper)); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func helperUpgrade() error {
	key, err := pack.ParsePublicKey(os.Getenv(envKey))
	if err != nil {
		return err
	}
	o := testOptions(home.Home{Dir: os.Getenv(envHome)}, key)
	u := New(o)
	crashAt := os.Getenv(envCrashAt)
	u.checkpoint = func(name string) {
		if name == crashAt {
			crash()
		}
	}
	src := HTTPSource(os.Getenv(envURL))
	if p := os.Getenv(envPack); p != "" {
		src = PackSource(p)
	}
	order := Order{ID: os.Getenv(envOrder), Version: os.Getenv(envVersion), Source: src}
	if err := u.Prepare(context.Background(), order); err != nil {
		return err
	}
	if os.Getenv(envSwitch) != "" {
		return u.Switch(order.ID)
	}
	return nil
}

// crash ends the process the hard way: SIGKILL on Unix, TerminateProcess
// on Windows. Nothing after it runs.
func crash() {
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		_ = p.Kill()
	}
	time.Sleep(time.Minute)
	os.Exit(99)
}

// helperCmd runs the test binary as a helper process.
func helperCmd(t testing.TB, mode string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
