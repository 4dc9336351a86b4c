//go:build unix

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// TestCLIErrors checks what an operator sees when the CLI is set up
// wrong or the token's role is too low: one clear line and a documented
// exit code.
func TestCLIErrors(t *testing.T) {
	needBuild(t)
	parallel(t)
	dir := t.TempDir()
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: newVersion, KeepDefaults: true})

	var viewer protocol.TokenCreated
	srv.JSON(&viewer, "token", "create", "--role", "viewer", "--name", "e2e-viewer")
	viewerFile := filepath.Join(dir, "viewer.token")
	os.WriteFile(viewerFile, []byte(viewer.Secret+"\n"), 0o600)
	var tokens []protocol.Token
	srv.JSON(&tokens, "token", "list")
	if len(tokens) < 2 {
		t.Fatalf("token list: %+v", tokens)
	}
	for _, tok := range tokens {
		if strings.Contains(srv.OK("token", "list").Stdout, viewer.Secret) || tok.ID == "" {
			t.Fatalf("token list shows a secret or an empty id: %+v", tok)
		}
	}

	// A pack signed by a key the server does not trust.
	molt := moltBin(t)
	if out, err := exec.Command(molt, "pack", "keygen", "--out", filepath.Join(dir, "other"), "--no-passphrase").CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	untrusted := filepath.Join(dir, "untrusted.zip")
	if out, err := exec.Command(molt, "pack", "build", "--version", newVersion, "--bin-dir", filepath.Dir(e2etest.Binaries(t, newVersion)),
		"--key", filepath.Join(dir, "other", "molt.key"), "--out", untrusted).CombinedOutput(); err != nil {
		t.Fatalf("pack build: %v\n%s", err, out)
	}

	down := e2etest.FreeAddr(t)
	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"no server", []string{"MOLT_SERVER=", "MOLT_CA=", "MOLT_TOKEN_FILE="}, []string{"agents", "list"}, 2, "no server configured: pass --server"},
		{"untrusted certificate", []string{"MOLT_CA="}, []string{"agents", "list"}, 5, "is not trusted"},
		{"server down", []string{"MOLT_SERVER=https://" + down}, []string{"agents", "list"}, 5, "cannot connect to the server at " + down},
		{"bad token", []string{"MOLT_TOKEN_FILE=", "MOLT_TOKEN=molt_nonsense"}, []string{"agents", "list"}, 6, "the server refused the token (401)"},
		{"viewer may not change settings", []string{"MOLT_TOKEN_FILE=" + viewerFile}, []string{"settings", "set", "activation-upgrade.linux", "true"}, 6, "admin"},
		{"viewer may not start runs", []string{"MOLT_TOKEN_FILE=" + viewerFile}, []string{"upgrade", "--all", "--yes"}, 6, "operator"},
		{"unknown setting", nil, []string{"settings", "set", "no.such.key", "1"}, 1, "no.such.key"},
		{"unknown run", nil, []string{"runs", "show", "r-999"}, 1, "r-999"},
		{"nothing to upgrade", nil, []string{"upgrade", "--all", "--yes"}, 1, "no agent to upgrade"},
		{"pack signed by an untrusted key", nil, []string{"release", "import", untrusted}, 1, "pack refused"},
		{"no such pack", nil, []string{"release", "import", filepath.Join(dir, "none.zip")}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := srv.MoltCmd(context.Background(), tt.args...)
			cmd.Env = append(cmd.Env, tt.env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			t.Logf("molt %s: exit %d: %s", strings.Join(tt.args, " "), code, stderr.String())
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) || len(lines) != 1 {
				t.Fatalf("molt %v: exit %d, stderr %q; want exit %d and one line with %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}
