package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestTokenCreateOut: --out writes the secret to a file only its owner
// can read, refuses an existing file without --force (before asking the
// server for a token), and with --force replaces a 0644 file by a 0600 one.
func TestTokenCreateOut(t *testing.T) {
	var created atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/tokens" {
			http.NotFound(w, r)
			return
		}
		n := created.Add(1)
		json.NewEncoder(w).Encode(protocol.TokenCreated{Token: protocol.Token{ID: "t-9", Role: protocol.RoleOperator}, Secret: "molt_secret" + strings.Repeat("x", int(n))})
	}))
	defer hs.Close()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "noconfig"))
	t.Setenv(envToken, "molt_admin")
	conn := []string{"--server", hs.URL}
	file := filepath.Join(dir, "ci.token")
	checkFile := func(want string) {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil || string(b) != want+"\n" {
			t.Fatalf("%s holds %q (%v), want %q", file, b, err, want)
		}
		if fi, _ := os.Stat(file); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %04o, want 0600", file, fi.Mode().Perm())
		}
	}

	for _, tc := range []struct {
		name      string
		setup     func()
		args      []string
		code      int
		errWant   string
		fileWant  string
		newTokens int32
	}{
		{name: "new file", args: []string{"--out", file}, errWant: "its secret is in " + file + " (mode 0600)", fileWant: "molt_secretx", newTokens: 1},
		{name: "existing file refused", args: []string{"--out", file}, code: 1, errWant: "--out " + file + ": exists; pass --force to replace it", fileWant: "molt_secretx"},
		{name: "a 0644 file replaced with --force", setup: func() { os.Chmod(file, 0o644) }, args: []string{"--out", file, "--force"}, fileWant: "molt_secretxx", newTokens: 1},
		{name: "directory missing", args: []string{"--out", filepath.Join(dir, "none", "t")}, code: 1, errWant: "--out:"},
		{name: "force without out", args: []string{"--force"}, code: 2, errWant: "--force: only with --out"},
		{name: "out and json", args: []string{"--out", file + "2", "--json"}, code: 2, errWant: "--json and --out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			before := created.Load()
			out, errOut, code := runPack(t, append(append([]string{"token", "create", "--role", "operator"}, tc.args...), conn...)...)
			if code != tc.code || !strings.Contains(errOut, tc.errWant) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tc.code, errOut, tc.errWant)
			}
			if out != "" {
				t.Errorf("stdout %q: the secret must only go to the file", out)
			}
			if n := created.Load() - before; n != tc.newTokens {
				t.Errorf("%d tokens created, want %d", n, tc.newTokens)
			}
			if tc.fileWant != "" {
				checkFile(tc.fileWant)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".ci.token.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
