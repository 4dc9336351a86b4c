package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
	"github.com/moltfleet/molt/workload/spec"
)

// runPack runs the molt command tree in-process, as main does.
func runPack(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(""))
	code = cli.Main(root, args, &errb)
	return out.String(), errb.String(), code
}

// fakeDist lays out what scripts/build.sh would for two platforms, with
// small fake binaries (builds from it need --skip-version-check).
func fakeDist(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for plat, roles := range packtest.SmallFiles() {
		for role, data := range roles {
			p := filepath.Join(dir, filepath.FromSlash(packtest.ArtifactPath(plat, role)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestPackKeygenFiles(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	out, errOut, code := runPack(t, "pack", "keygen", "--out", keys, "--no-passphrase", "--json")
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	var res struct {
		KeyID     string `json:"key_id"`
		PublicKey string `json:"public_key"`
		Encrypted bool   `json:"encrypted"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("keygen --json: %v: %s", err, out)
	}
	sec := filepath.Join(keys, "molt.key")
	for path, mode := range map[string]os.FileMode{sec: 0o600, filepath.Join(keys, "molt.pub"): 0o644, keys: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	k, err := pack.LoadTrustedKeys([]string{filepath.Join(keys, "molt.pub"), res.PublicKey})
	if err != nil || k[0].ID() != res.KeyID || !k[0].Equal(k[1]) {
		t.Fatalf("public key file and printed key disagree: %v", err)
	}
	if res.Encrypted {
		t.Fatal("--no-passphrase made an encrypted key")
	}
	before, _ := os.ReadFile(sec)
	_, errOut, code = runPack(t, "pack", "keygen", "--out", keys, "--no-passphrase")
	if code != 1 || !strings.Contains(errOut, "refusing to overwrite a signing key") {
		t.Fatalf("second keygen: exit %d: %s", code, errOut)
	}
	if after, _ := os.ReadFile(sec); !bytes.Equal(before, after) {
		t.Fatal("refused keygen changed the secret key")
	}
	if _, errOut, code = runPack(t, "pack", "keygen", "--out", keys, "--no-passphrase", "--force"); code != 0 {
		t.Fatalf("keygen --force: exit %d: %s", code, errOut)
	}
	if after, _ := os.ReadFile(sec); bytes.Equal(before, after) {
		t.Fatal("keygen --force kept the old key")
	}
	t.Setenv(packPassphraseEnv, "")
	_, errOut, code = runPack(t, "pack", "keygen", "--out", filepath.Join(dir, "other"))
	if code != 2 || !strings.Contains(errOut, "no terminal to ask") || !strings.Contains(errOut, "--no-passphrase") {
		t.Fatalf("keygen without a passphrase source: exit %d: %s", code, errOut)
	}
}

func TestPackPassphraseKey(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	t.Setenv(packPassphraseEnv, "release pass")
	if _, errOut, code := runPack(t, "pack", "keygen", "--out", keys, "--kdf", "interactive"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	text, _ := os.ReadFile(filepath.Join(keys, "molt.key"))
	if !pack.SecretKeyEncrypted(text) {
		t.Fatal("key with a passphrase is not encrypted")
	}
	dist := fakeDist(t)
	build := func(extra ...string) (string, string, int) {
		args := append([]string{"pack", "build", "--version", "1.5.0", "--bin-dir", dist, "--skip-version-check",
			"--key", filepath.Join(keys, "molt.key"), "--out", filepath.Join(dir, "p.zip")}, extra...)
		return runPack(t, args...)
	}
	t.Setenv(packPassphraseEnv, "wrong")
	if _, errOut, code := build(); code != 1 || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("wrong passphrase: exit %d: %s", code, errOut)
	}
	t.Setenv(packPassphraseEnv, "")
	if _, errOut, code := build(); code != 2 || !strings.Contains(errOut, "--passphrase-file") {
		t.Fatalf("no passphrase: exit %d: %s", code, errOut)
	}
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("release pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := build("--passphrase-file", passFile)
	if code != 0 || !strings.Contains(out, "built ") {
		t.Fatalf("build: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code = runPack(t, "pack", "verify", "--key", filepath.Join(keys, "molt.pub"), filepath.Join(dir, "p.zip"))
	if code != 0 || !strings.HasPrefix(out, "ok: molt 1.5.0, 2 platforms, signed by key ") {
		t.Fatalf("verify: exit %d: %s%s", code, out, errOut)
	}
}

func TestPackCLIBadPacks(t *testing.T) {
	dir := t.TempDir()
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "release.pub")
	pubText, _ := pub.MarshalText()
	if err := os.WriteFile(pubFile, pubText, 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	cases := append(packtest.BadPacks(t, t.TempDir(), sec), packtest.BadWorkloadPacks(t, t.TempDir(), sec)...)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			args := []string{"pack", "verify", "--key", pubFile}
			if tc.Platform != "" {
				args = append(args, "--platform", tc.Platform)
			}
			if tc.MaxSize != 0 {
				args = append(args, "--max-size", strconv.FormatInt(tc.MaxSize, 10))
			}
			out, errOut, code := runPack(t, append(args, tc.Path)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out, errOut)
			}
			if out != "" {
				t.Fatalf("stdout %q on failure", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "molt: "+tc.Path+": ") || !strings.Contains(errOut, tc.Text) {
				t.Fatalf("stderr %q, want one line about %s containing %q", errOut, tc.Path, tc.Text)
			}
			msg := strings.TrimPrefix(errOut, "molt: "+tc.Path+": ")
			if other, dup := seen[msg]; dup {
				t.Fatalf("same message as %q: %s", other, msg)
			}
			seen[msg] = tc.Name
		})
	}
}

func TestPackUsage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "p.zip")
	_, sec, _ := pack.GenerateKey(nil)
	packtest.Good(t, good, "1.5.0", packtest.SmallFiles(), sec)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"verify without key", []string{"pack", "verify", good}, "--key PUBLIC is required"},
		{"verify bad key", []string{"pack", "verify", "--key", "RWnotakey", good}, "--key: trusted key RWnotakey"},
		{"verify bad size", []string{"pack", "verify", "--key", "x", "--max-size", "lots", good}, `"lots" is not a size`},
		{"build without version", []string{"pack", "build", "--bin-dir", dir, "--key", "k", "--out", "o"}, "--version is required"},
		{"build bad platform", []string{"pack", "build", "--version", "1.0.0", "--bin-dir", dir, "--key", "k", "--out", "o", "--platform", "linux"}, `--platform "linux" is not GOOS/GOARCH`},
		{"build bad time", []string{"pack", "build", "--version", "1.0.0", "--bin-dir", dir, "--key", "k", "--out", "o", "--released", "yesterday"}, "not an RFC 3339 time"},
		{"keygen bad kdf", []string{"pack", "keygen", "--out", dir, "--kdf", "fast"}, `"fast" is not sensitive or interactive`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runPack(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 containing %q", code, errOut, tc.want)
			}
		})
	}
}

// TestPackReleaseRoundTrip is a release as a release engineer makes it,
// with real processes: scripts/build.sh, then the built molt's keygen,
// build, verify, inspect and sign.
func TestPackReleaseRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if runtime.GOOS == "windows" {
		t.Skip("scripts/build.sh needs a POSIX shell")
	}
	dir := t.TempDir()
	dist := filepath.Join(dir, "dist")
	build := exec.Command("bash", "../../scripts/build.sh", "1.5.0", dist)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	host := runtime.GOOS + "_" + runtime.GOARCH
	molt := filepath.Join(dir, "molt")
	if err := os.Rename(filepath.Join(dist, host, "molt"), molt); err != nil {
		t.Fatal(err)
	}
	// A second platform of fake binaries: not runnable here, so not
	// version-checked, but packed and verified like the real one.
	fake := filepath.Join(dist, "freebsd_arm64")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"molt-agent", "molt-supervisor"} {
		if err := os.WriteFile(filepath.Join(fake, n), []byte("fake "+n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The operator's workload beside them, its spec in dist/pack.yaml.
	tree := filepath.Join(dist, host, "workloads", "exporter")
	for p, mode := range map[string]os.FileMode{"bin/exporter": 0o755, "conf/default.yaml": 0o644} {
		p = filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+filepath.Base(p)+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	yml := "workloads:\n  - name: exporter\n    command: bin/exporter\n    ready: {tcp: \"127.0.0.1:9100\", within: 30s}\n"
	if err := os.WriteFile(filepath.Join(dist, "pack.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(molt, args...)
		cmd.Env = append(os.Environ(), packPassphraseEnv+"=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("molt %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	keys := filepath.Join(dir, "keys")
	run(0, "pack", "keygen", "--out", keys, "--no-passphrase")
	pubKey, err := pack.LoadTrustedKeys([]string{filepath.Join(keys, "molt.pub")})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "molt-1.5.0.zip")
	out := run(0, "pack", "build", "--version", "1.5.0", "--bin-dir", dist, "--key", filepath.Join(keys, "molt.key"),
		"--floor", "1.2.0", "--released", "2026-11-01T12:00:00Z", "--out", p)
	if !strings.Contains(out, "2 platforms (freebsd/arm64, "+runtime.GOOS+"/"+runtime.GOARCH+")") {
		t.Fatalf("build says %q", out)
	}
	if !strings.Contains(out, ", 1 workload (2 files), ") {
		t.Fatalf("build says %q", out)
	}
	wantOK := "ok: molt 1.5.0, 2 platforms, 1 workload (2 files), signed by key " + pubKey[0].ID() + "\n"
	if out := run(0, "pack", "verify", "--key", filepath.Join(keys, "molt.pub"), "--platform", runtime.GOOS+"/"+runtime.GOARCH, p); out != wantOK {
		t.Fatalf("verify says %q, want %q", out, wantOK)
	}
	if out := run(0, "pack", "verify", "--key", pubKey[0].String(), p); out != wantOK {
		t.Fatalf("verify with an inline key says %q", out)
	}
	out = run(0, "pack", "inspect", p)
	for _, want := range []string{"version:    1.5.0", "floor:      1.2.0", "released:   2026-11-01T12:00:00Z",
		"NOT CHECKED", host + "/molt-agent", "freebsd_arm64/molt-supervisor", pubKey[0].ID(),
		"exporter  bin/exporter  ready tcp 127.0.0.1:9100 within 30s  2 files, 44 B"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	var in packInspection
	if err := json.Unmarshal([]byte(run(0, "pack", "inspect", "--json", p)), &in); err != nil {
		t.Fatal(err)
	}
	if in.Manifest == nil || in.Manifest.Version != "1.5.0" || in.Signature.Checked || in.Signature.KeyID != pubKey[0].ID() || len(in.Manifest.Artifacts) != 2 {
		t.Fatalf("inspect --json: %+v", in)
	}
	// A building molt must not pack binaries of another version.
	out = run(1, "pack", "build", "--version", "1.6.0", "--bin-dir", dist, "--key", filepath.Join(keys, "molt.key"), "--out", filepath.Join(dir, "x.zip"))
	if !strings.Contains(out, "is version 1.5.0, the pack is 1.6.0") {
		t.Fatalf("build of mislabelled binaries says %q", out)
	}
	// Key rotation: re-sign with a new key; the old one no longer verifies.
	newKeys := filepath.Join(dir, "new")
	run(0, "pack", "keygen", "--out", newKeys, "--no-passphrase")
	run(0, "pack", "sign", "--key", filepath.Join(newKeys, "molt.key"), p)
	if out := run(0, "pack", "verify", "--key", filepath.Join(keys, "molt.pub"), "--key", filepath.Join(newKeys, "molt.pub"), p); !strings.HasPrefix(out, "ok: molt 1.5.0") {
		t.Fatalf("verify after re-signing: %q", out)
	}
	if out := run(1, "pack", "verify", "--key", filepath.Join(keys, "molt.pub"), p); !strings.Contains(out, "which is not trusted") {
		t.Fatalf("old key after re-signing: %q", out)
	}
}

func TestPackArgs(t *testing.T) {
	for _, args := range [][]string{
		{"pack", "verify", "--key", "k"},
		{"pack", "inspect", "a.zip", "b.zip"},
		{"pack", "keygen", "--out", "x", "extra"},
		{"pack", "inspect", "--no-such-flag", "a.zip"},
	} {
		if _, errOut, code := runPack(t, args...); code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, errOut)
		}
	}
}

// TestPackInspectGolden pins what inspect prints, with a key and a pack
// that are the same on every run.
func TestPackInspectGolden(t *testing.T) {
	_, sec, err := pack.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	files := packtest.SmallFiles()
	m := packtest.Manifest("1.5.0", files)
	m.Floor = "1.2.0"
	exporter := packtest.Workload{
		Spec: spec.Spec{
			Name: "exporter", Command: "bin/exporter", Args: []string{"--listen", "127.0.0.1:9100", "--label", "two words"},
			Ready: spec.Ready{Probe: spec.Probe{HTTP: "http://127.0.0.1:9100/metrics"}, Within: spec.Duration(30 * time.Second)},
			Live:  &spec.Live{Probe: spec.Probe{TCP: "127.0.0.1:9100"}, Interval: spec.Duration(10 * time.Second)},
			Busy:  &spec.Busy{Probe: spec.Probe{Command: []string{"bin/busy", "--quiet"}}},
		},
		Files: map[string][]byte{"bin/exporter": []byte("#!/bin/sh\n"), "bin/busy": []byte("#!/bin/sh\necho idle\n"), "conf/default.yaml": []byte("a: 1\n")},
		Modes: map[string]string{"bin/busy": "0755"},
	}
	ws := packtest.Workloads{"linux/amd64": {exporter, packtest.ShellWorkload("sensor", "#!/bin/sh\nexec sleep 1000\n")}}
	packtest.AddWorkloads(m, ws)
	mb := packtest.Encode(t, m)
	sig := pack.Sign(sec, mb, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	// The pack is named relative to the working directory so the output
	// does not hold a temporary path; the subtest restores the directory
	// before the golden files are read.
	var text, js string
	t.Run("inspect", func(t *testing.T) {
		t.Chdir(t.TempDir())
		entries := packtest.Entries(mb, sig, packtest.Files{"linux/amd64": files["linux/amd64"]})
		packtest.WriteZip(t, "molt-1.5.0.zip", append(entries, packtest.WorkloadEntries(ws)...))
		// The manifest names windows/amd64 too, but inspect checks nothing.
		var errOut string
		var code int
		if text, errOut, code = runPack(t, "pack", "inspect", "molt-1.5.0.zip"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if js, errOut, code = runPack(t, "pack", "inspect", "--json", "molt-1.5.0.zip"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	golden(t, "pack-inspect.txt", text)
	golden(t, "pack-inspect.json", js)
}

// TestPackBuildWorkloads: molt pack build packs the workload trees with
// their specs from pack.yaml (or --workloads), verify counts them; a bad
// spec or tree is refused with exit 1, one line, and no pack file.
func TestPackBuildWorkloads(t *testing.T) {
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
	dist := fakeDist(t)
	tree := filepath.Join(dist, "linux_amd64", "workloads", "exporter")
	for p, data := range map[string]string{"bin/exporter": "#!/bin/sh\nexec sleep 1000\n", "conf/default.yaml": "a: 1\n"} {
		p = filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(tree, "conf", "default.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	specs := filepath.Join(dir, "specs.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(specs, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "p.zip")
	build := func() (string, string, int) {
		return runPack(t, "pack", "build", "--version", "1.5.0", "--bin-dir", dist, "--skip-version-check",
			"--key", keyFile, "--workloads", specs, "--out", out)
	}
	write("workloads:\n  - name: exporter\n    command: bin/exporter\n    ready: {tcp: \"127.0.0.1:9100\"}\n")
	stdout, errOut, code := build()
	if code != 0 || !strings.Contains(stdout, "2 platforms (linux/amd64, windows/amd64), 1 workload (2 files)") {
		t.Fatalf("build: exit %d: %s%s", code, stdout, errOut)
	}
	stdout, errOut, code = runPack(t, "pack", "verify", "--key", pubFile, out)
	if code != 0 || !strings.HasPrefix(stdout, "ok: molt 1.5.0, 2 platforms, 1 workload (2 files), signed by key ") {
		t.Fatalf("verify: exit %d: %s%s", code, stdout, errOut)
	}
	var res struct {
		Workloads     int `json:"workloads"`
		WorkloadFiles int `json:"workload_files"`
	}
	stdout, _, _ = runPack(t, "pack", "verify", "--json", "--key", pubFile, out)
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Workloads != 1 || res.WorkloadFiles != 2 {
		t.Fatalf("verify --json: %s %v", stdout, err)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"command outside", "workloads:\n  - name: exporter\n    command: ../x\n    ready: {tcp: \"127.0.0.1:9100\"}\n",
			`command "../x": not a clean relative path`},
		{"unknown key", "workloads:\n  - name: exporter\n    command: bin/exporter\n    redy: {tcp: \"127.0.0.1:9100\"}\n",
			`specs.yaml: line 4: unknown key "redy"`},
		{"no spec for the tree", "workloads: []\n", "linux_amd64/workloads/exporter has no spec in specs.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.yaml)
			stdout, errOut, code := build()
			if code != 1 || stdout != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one line containing %q", code, stdout, errOut, tc.want)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*p.zip*")); len(left) != 0 {
				t.Fatalf("a refused build left %v", left)
			}
		})
	}
}
