package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// TestPackBuildDeltaFrom: --delta-from adds patches to the pack, the
// summary line counts them, --json shows them in the manifest, verify
// takes the pack, and an older pack that is not one is a one-line error.
func TestPackBuildDeltaFrom(t *testing.T) {
	dir := t.TempDir()
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "molt.key"), filepath.Join(dir, "molt.pub")
	keyText, _ := pack.MarshalSecretKey(sec, "", pack.CostSensitive)
	pubText, _ := pub.MarshalText()
	if err := os.WriteFile(keyFile, keyText, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pubText, 0o644); err != nil {
		t.Fatal(err)
	}
	// Two releases whose linux agent is 64 KiB that differ in a line.
	agent := bytes.Repeat([]byte("0123456789abcdef molt agent code "), 2000)
	dist1, dist2 := fakeDist(t), fakeDist(t)
	p := filepath.FromSlash(packtest.ArtifactPath("linux/amd64", pack.RoleAgent))
	if err := os.WriteFile(filepath.Join(dist1, p), agent, 0o755); err != nil {
		t.Fatal(err)
	}
	agent2 := bytes.Replace(agent, []byte("molt agent code"), []byte("molt agent CODE"), 1)
	if err := os.WriteFile(filepath.Join(dist2, p), agent2, 0o755); err != nil {
		t.Fatal(err)
	}
	old, out := filepath.Join(dir, "1.5.0.zip"), filepath.Join(dir, "1.5.1.zip")
	if _, errOut, code := runPack(t, "pack", "build", "--version", "1.5.0", "--bin-dir", dist1, "--skip-version-check", "--key", keyFile, "--out", old); code != 0 {
		t.Fatalf("build 1.5.0: exit %d: %s", code, errOut)
	}
	stdout, errOut, code := runPack(t, "pack", "build", "--version", "1.5.1", "--bin-dir", dist2, "--skip-version-check", "--key", keyFile,
		"--delta-from", old, "--out", out)
	if code != 0 || !strings.Contains(stdout, "2 platforms (linux/amd64, windows/amd64), 1 patches from 1.5.0 (") {
		t.Fatalf("build 1.5.1: exit %d: %s%s", code, stdout, errOut)
	}
	if stdout, errOut, code := runPack(t, "pack", "verify", "--key", pubFile, out); code != 0 || !strings.Contains(stdout, ", 1 patches from 1.5.0 (") {
		t.Fatalf("verify: exit %d: %s%s", code, stdout, errOut)
	}
	if stdout, errOut, code := runPack(t, "pack", "inspect", out); code != 0 ||
		!regexp.MustCompile(`(?m)^1\.5\.0 +linux_amd64/molt-agent +[0-9.]+ (B|KiB) +64\.5 KiB \([0-9.]+ %\) +[0-9a-f]{64}$`).MatchString(stdout) {
		t.Fatalf("inspect: exit %d: %s%s", code, stdout, errOut)
	}
	js, errOut, code := runPack(t, "pack", "build", "--version", "1.5.1", "--bin-dir", dist2, "--skip-version-check", "--key", keyFile,
		"--delta-from", old, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("build --json: exit %d: %s", code, errOut)
	}
	var res struct{ Manifest pack.Manifest }
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatal(err)
	}
	if ps := res.Manifest.Patches(); len(ps) != 1 || ps[0].Target != filepath.ToSlash(p) || ps[0].From != "1.5.0" {
		t.Fatalf("patches in --json: %+v", ps)
	}
	_, errOut, code = runPack(t, "pack", "build", "--version", "1.5.1", "--bin-dir", dist2, "--skip-version-check", "--key", keyFile,
		"--delta-from", keyFile, "--out", out)
	if code != 1 || !strings.Contains(errOut, "delta from "+keyFile+": ") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("--delta-from a key file: exit %d: %q", code, errOut)
	}
}
