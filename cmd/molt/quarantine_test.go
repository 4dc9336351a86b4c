package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

// releaseServer starts an in-process server (over HTTPS) holding release
// 1.5.0 for linux/amd64 and windows/amd64, and returns the connection
// flags of a CLI with role's token.
func releaseServer(t *testing.T, role string) []string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "noconfig"))
	zipPath, trusted := signedPack(t, dir)
	ctx := context.Background()
	srv, err := server.New(ctx, server.Options{DataDir: filepath.Join(dir, "data"), TrustedKeys: trusted})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(hs.Close)
	f, err := os.Open(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := srv.ImportPack(ctx, f); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.CreateToken(ctx, role, "test")
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, tok.Secret)
	return []string{"--server", hs.URL, "--ca", ca}
}

// TestReleaseQuarantineCLI: molt release quarantine and unquarantine
// against a real server: --json is the release with its quarantines,
// release list shows them, and mistakes exit as elsewhere (2 for a flag
// the CLI refuses, 1 for what the server refuses).
func TestReleaseQuarantineCLI(t *testing.T) {
	conn := releaseServer(t, protocol.RoleOperator)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return runPack(t, append(args, conn...)...)
	}

	out, errOut, code := run("release", "quarantine", "1.5.0", "--platform", "windows/amd64", "--reason", "crashes on Server 2016", "--json")
	if code != 0 {
		t.Fatalf("quarantine: exit %d: %s", code, errOut)
	}
	var rel protocol.Release
	if err := json.Unmarshal([]byte(out), &rel); err != nil || len(rel.Quarantined) != 1 || rel.Quarantined[0].Platform != "windows/amd64" ||
		rel.Quarantined[0].Reason != "crashes on Server 2016" || rel.Quarantined[0].Automatic {
		t.Fatalf("quarantine --json: %v %q", err, out)
	}

	out, errOut, code = run("release", "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "QUARANTINED") || !strings.Contains(out, "windows/amd64") || !strings.Contains(out, "operator") ||
		!strings.Contains(out, "crashes on Server 2016") {
		t.Errorf("release list does not show the quarantine:\n%s", out)
	}
	out, _, _ = run("release", "list", "--json")
	var rels []protocol.Release
	if err := json.Unmarshal([]byte(out), &rels); err != nil || len(rels) != 1 || len(rels[0].Quarantined) != 1 {
		t.Errorf("release list --json: %v %q", err, out)
	}

	out, errOut, code = run("release", "quarantine", "1.5.0")
	if code != 0 || !strings.Contains(out, "linux/amd64") || !strings.Contains(out, "quarantined by an operator") {
		t.Errorf("quarantine of every platform: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code = run("release", "unquarantine", "1.5.0")
	if code != 0 || out != "release 1.5.0 is not quarantined for any platform\n" {
		t.Errorf("unquarantine: exit %d: %q %s", code, out, errOut)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown version", []string{"release", "quarantine", "9.9.9"}, 1, "release 9.9.9 is not imported"},
		{"platform the release has no pack for", []string{"release", "unquarantine", "1.5.0", "--platform", "darwin/arm64"}, 1, `no pack for platform "darwin/arm64"`},
		{"platform that is no platform", []string{"release", "quarantine", "1.5.0", "--platform", "linux"}, 2, `--platform "linux" is not GOOS/GOARCH`},
		{"no version", []string{"release", "quarantine"}, 2, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d %q, want %d and %q", code, errOut, tc.code, tc.msg)
			}
		})
	}
}

// TestReleaseQuarantineViewer: a viewer may not quarantine (exit 6, as
// every refused role).
func TestReleaseQuarantineViewer(t *testing.T) {
	conn := releaseServer(t, protocol.RoleViewer)
	_, errOut, code := runPack(t, append([]string{"release", "quarantine", "1.5.0"}, conn...)...)
	if code != exitAuth || !strings.Contains(errOut, "operator") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestPrintQuarantines: release list adds the quarantines after its
// table, and nothing without one.
func TestPrintQuarantines(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := protocol.Release{Version: "2.0.0", Released: now, Platforms: []string{"linux/amd64"}, Imported: now}
	var plain bytes.Buffer
	if err := printReleases(&plain, []protocol.Release{r}, now); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "QUARANTINED") {
		t.Errorf("no quarantine, yet:\n%s", plain.String())
	}
	r.Quarantined = []protocol.Quarantine{{Platform: "linux/amd64", Reason: "rolled back on 2 linux/amd64 agents", At: now.Add(-5 * time.Minute), Automatic: true}}
	var b bytes.Buffer
	if err := printReleases(&b, []protocol.Release{r}, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	last := strings.Fields(lines[len(lines)-1])
	if len(lines) != 5 || lines[2] != "" || last[0] != "2.0.0" || last[1] != "linux/amd64" || !strings.Contains(lines[4], "(5m ago)  rollbacks  rolled back on 2 linux/amd64 agents") {
		t.Errorf("release list with a quarantine:\n%s", b.String())
	}
}
