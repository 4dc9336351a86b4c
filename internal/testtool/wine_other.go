//go:build !linux

package testtool

import "testing"

// Wine ends t through Missing: the Windows builds are run under Wine on
// Linux only (scripts/wine-setup.sh is for Debian).
func Wine(t testing.TB) (wine string, env []string) {
	t.Helper()
	Missing(t, "Wine tests run on Linux only")
	return "", nil
}
