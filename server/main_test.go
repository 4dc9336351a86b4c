package server

import (
	"os"
	"testing"
)

// moltDir is the directory buildMolt built molt into ("" until a test
// asked for it).
var moltDir string

// TestMain removes what the tests built for the whole run: a test's own
// files are in t.TempDir, but the molt binary is shared by every test
// that runs molt serve.
func TestMain(m *testing.M) {
	code := m.Run()
	cleanupTestStore()
	if moltDir != "" {
		os.RemoveAll(moltDir)
	}
	os.Exit(code)
}
