package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
	"github.com/moltfleet/molt/updater/pack"
)

// signedPack builds release 1.5.0 with molt pack (a new key in dir) and
// returns the pack and the key a server trusts it by.
func signedPack(t *testing.T, dir string) (string, []pack.Key) {
	t.Helper()
	keys := filepath.Join(dir, "keys")
	if _, errOut, code := runPack(t, "pack", "keygen", "--out", keys, "--no-passphrase"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	zipPath := filepath.Join(dir, "molt-1.5.0.pack")
	if _, errOut, code := runPack(t, "pack", "build", "--version", "1.5.0", "--bin-dir", fakeDist(t), "--skip-version-check",
		"--key", filepath.Join(keys, "molt.key"), "--out", zipPath); code != 0 {
		t.Fatalf("pack build: exit %d: %s", code, errOut)
	}
	trusted, err := pack.LoadTrustedKeys([]string{filepath.Join(keys, "molt.pub")})
	if err != nil {
		t.Fatal(err)
	}
	return zipPath, trusted
}

// TestReleaseImportZipAsIs: a pack from molt pack build goes up unchanged
// and a real server (in-process, over HTTPS) imports it; a pack the
// server refuses exits 1 with its reason.
func TestReleaseImportZipAsIs(t *testing.T) {
	dir := t.TempDir()
	zipPath, trusted := signedPack(t, dir)
	ctx := context.Background()
	srv, hs, ca := inProcessServer(t, dir, server.Options{TrustedKeys: trusted})
	tok, err := srv.CreateToken(ctx, protocol.RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, tok.Secret)
	conn := []string{"--server", hs.URL, "--ca", ca}

	out, errOut, code := runPack(t, append([]string{"release", "import", zipPath, "--json"}, conn...)...)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	var rel protocol.Release
	if err := json.Unmarshal([]byte(out), &rel); err != nil || rel.Version != "1.5.0" || len(rel.Platforms) == 0 {
		t.Fatalf("import --json: %v %q", err, out)
	}
	// The server keeps exactly the signed manifest that was built.
	r, err := pack.Open(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kept, err := os.ReadFile(filepath.Join(dir, "data", "packs", "1.5.0", pack.ManifestName))
	if err != nil || string(kept) != string(r.ManifestBytes()) {
		t.Fatalf("manifest on the server differs from the pack's: %v", err)
	}

	// Another key: the server's reason reaches the operator.
	otherKeys := filepath.Join(dir, "other")
	if _, errOut, code := runPack(t, "pack", "keygen", "--out", otherKeys, "--no-passphrase"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	other := filepath.Join(dir, "molt-1.6.0.pack")
	if _, errOut, code := runPack(t, "pack", "build", "--version", "1.6.0", "--bin-dir", fakeDist(t), "--skip-version-check",
		"--key", filepath.Join(otherKeys, "molt.key"), "--out", other); code != 0 {
		t.Fatalf("pack build: exit %d: %s", code, errOut)
	}
	_, errOut, code = runPack(t, append([]string{"release", "import", other}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "pack refused") {
		t.Fatalf("untrusted pack: exit %d: %s", code, errOut)
	}
}
