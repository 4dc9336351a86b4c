// Package testtool is how a test says it needs a program from outside the
// module (minisign, Wine, sh, script(1), unshare). On a developer's
// machine a missing tool skips the test with one line saying what was
// skipped and how to get the tool; in CI (CI set) or with
// MOLT_REQUIRE_TOOLS=1 it fails the test instead, so a runner that lost a
// tool cannot pass by skipping what it was meant to check.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireVar turns missing tools into failures when set to 1 (0 turns
// them back into skips, also in CI). .ci/run exports it.
const RequireVar = "MOLT_REQUIRE_TOOLS"

// Required reports whether a missing tool fails the test: RequireVar when
// it is set, else whether CI is set (every common CI service sets it).
func Required() bool {
	if v, ok := os.LookupEnv(RequireVar); ok && v != "" {
		return on(v)
	}
	return on(os.Getenv("CI"))
}

func on(v string) bool { return v != "" && v != "0" && v != "false" }

// Need returns the path of program name found on PATH; when there is none
// it ends t through Missing with "NAME not found: HOW", where how says how
// to get it, e.g. "apt-get install minisign".
func Need(t testing.TB, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found: %s", name, how)
	}
	return p
}

// Have is Need for an optional step of a longer test: it returns the path
// and true, or logs "NAME not found: HOW; step skipped" and returns false,
// or, when Required, fails t.
func Have(t testing.TB, name, how string) (string, bool) {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p, true
	}
	msg := fmt.Sprintf("%s not found: %s", name, how)
	if Required() {
		t.Fatalf("%s (%s: tools are required here)", msg, why())
	}
	t.Logf("%s; step skipped", msg)
	return "", false
}

// Missing ends t because something it needs from outside the module is
// not there: it skips with the message, or fails when Required. The
// message says what is missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s: tools are required here)", msg, why())
	}
	t.Skip(msg)
}

func why() string {
	if v := os.Getenv(RequireVar); v != "" {
		return RequireVar + "=" + v
	}
	return "CI=" + os.Getenv("CI")
}
