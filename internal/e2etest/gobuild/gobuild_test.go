package gobuild

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyModule writes a small main module into a new directory, with files
// overriding its defaults, and returns the directory.
func tinyModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{
		"go.mod":    "module example.com/tiny\n\ngo 1.22\n",
		"main.go":   "package main\n\nimport _ \"embed\"\n\nvar version string\n\n//go:embed asset.txt\nvar asset string\n\nfunc main() { println(version, asset) }\n",
		"asset.txt": "a",
	}
	for k, v := range files {
		all[k] = v
	}
	for name, body := range all {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// useCache points the cache at a new empty directory.
func useCache(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv(EnvCache, d)
	return d
}

func build(t *testing.T, mod, ldflags string) (Result, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tiny")
	r, err := Build(out, Options{Pkgs: []string{"."}, LDFlags: ldflags, Dir: mod, Env: []string{"CGO_ENABLED=0"}})
	if err != nil {
		t.Fatal(err)
	}
	return r, out
}

// run runs a built tiny and returns what it printed.
func run(t *testing.T, bin string) string {
	t.Helper()
	b, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, b)
	}
	return strings.TrimSpace(string(b))
}

func TestSecondRequestIsServedFromCache(t *testing.T) {
	useCache(t)
	mod := tinyModule(t, nil)
	r1, out1 := build(t, mod, "-X main.version=1.0.0")
	r2, out2 := build(t, mod, "-X main.version=1.0.0")
	if !r1.Built || r2.Built {
		t.Fatalf("built first %v, second %v; want true, false", r1.Built, r2.Built)
	}
	for _, out := range []string{out1, out2} {
		if got := run(t, out); got != "1.0.0 a" {
			t.Errorf("%s printed %q, want %q", out, got, "1.0.0 a")
		}
	}
	// A copy of the tree elsewhere is the same source: no build.
	r3, _ := build(t, tinyModule(t, nil), "-X main.version=1.0.0")
	if r3.Built || r3.Key != r1.Key {
		t.Errorf("identical tree elsewhere: built %v, key %s; want false, %s", r3.Built, r3.Key, r1.Key)
	}
}

func TestKeyChanges(t *testing.T) {
	useCache(t)
	base, _ := build(t, tinyModule(t, nil), "-X main.version=1.0.0")
	for _, tc := range []struct {
		name    string
		files   map[string]string
		ldflags string
		want    string
	}{
		{"source file", map[string]string{"other.go": "package main\n\nfunc init() { version += \"+\" }\n"}, "-X main.version=1.0.0", "1.0.0+ a"},
		{"embedded asset", map[string]string{"asset.txt": "b"}, "-X main.version=1.0.0", "1.0.0 b"},
		{"go.mod", map[string]string{"go.mod": "module example.com/tiny\n\ngo 1.23\n"}, "-X main.version=1.0.0", "1.0.0 a"},
		{"ldflags", nil, "-X main.version=1.0.1", "1.0.1 a"},
		{"ldflags order", nil, "-s -X main.version=1.0.0", "1.0.0 a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, out := build(t, tinyModule(t, tc.files), tc.ldflags)
			if !r.Built || r.Key == base.Key {
				t.Errorf("built %v, key %s (base %s); want a new build under a new key", r.Built, r.Key, base.Key)
			}
			if got := run(t, out); got != tc.want {
				t.Errorf("printed %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIgnoredFilesKeepTheKey(t *testing.T) {
	useCache(t)
	ignore := "/dist/\n*.test\n/tiny\n"
	base, _ := build(t, tinyModule(t, map[string]string{".gitignore": ignore}), "")
	r, _ := build(t, tinyModule(t, map[string]string{
		".gitignore": ignore, "dist/x": "1", "tiny": "old build", "sub/pkg.test": "x", ".git/HEAD": "ref",
	}), "")
	if r.Built || r.Key != base.Key {
		t.Errorf("build outputs added: built %v, key %s; want false, %s", r.Built, r.Key, base.Key)
	}
	// Not anchored at the top: sub/tiny is source.
	r, _ = build(t, tinyModule(t, map[string]string{".gitignore": ignore, "sub/tiny": "data"}), "")
	if !r.Built {
		t.Error("sub/tiny added: not built; want a new key")
	}
}

func TestDamagedEntryIsRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, entry string)
	}{
		{"truncated binary", func(t *testing.T, entry string) {
			bin := filepath.Join(entry, "bin", "tiny")
			fi, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(bin, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"no manifest", func(t *testing.T, entry string) {
			if err := os.Remove(filepath.Join(entry, "manifest.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{"binary missing", func(t *testing.T, entry string) {
			if err := os.Remove(filepath.Join(entry, "bin", "tiny")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := useCache(t)
			mod := tinyModule(t, nil)
			r, _ := build(t, mod, "-X main.version=2.0.0")
			entries, _ := filepath.Glob(filepath.Join(cache, "*", r.Key))
			if len(entries) != 1 {
				t.Fatalf("entries of key %s: %v", r.Key, entries)
			}
			tc.damage(t, entries[0])
			r, out := build(t, mod, "-X main.version=2.0.0")
			if !r.Built {
				t.Error("damaged entry used; want a rebuild")
			}
			if got := run(t, out); got != "2.0.0 a" {
				t.Errorf("printed %q, want %q", got, "2.0.0 a")
			}
			if r, _ := build(t, mod, "-X main.version=2.0.0"); r.Built {
				t.Error("rebuilt entry not used")
			}
		})
	}
}

func TestFailedBuildLeavesNothing(t *testing.T) {
	cache := useCache(t)
	mod := tinyModule(t, map[string]string{"main.go": "package main\n\nfunc main() { undefined() }\n"})
	if _, err := Build(filepath.Join(t.TempDir(), "x"), Options{Pkgs: []string{"."}, Dir: mod}); err == nil {
		t.Fatal("build of broken source: no error")
	}
	left, _ := filepath.Glob(filepath.Join(cache, "*", "*"))
	for _, p := range left {
		if !strings.HasSuffix(p, ".lock") && filepath.Base(p) != ".inuse" {
			t.Errorf("left behind: %s", p)
		}
	}
}

func TestOutputIsACopy(t *testing.T) {
	useCache(t)
	mod := tinyModule(t, nil)
	_, out := build(t, mod, "")
	if err := os.WriteFile(out, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, out2 := build(t, mod, "")
	if r.Built {
		t.Error("rebuilt after the caller's copy changed")
	}
	if got := run(t, out2); got != "a" {
		t.Errorf("printed %q, want %q", got, "a")
	}
}

func TestDirectoryOutput(t *testing.T) {
	useCache(t)
	mod := tinyModule(t, map[string]string{
		"cmd/one/main.go": "package main\n\nfunc main() { println(\"one\") }\n",
		"cmd/two/main.go": "package main\n\nfunc main() { println(\"two\") }\n",
	})
	out := t.TempDir()
	if _, err := Build(out, Options{Pkgs: []string{"./cmd/one", "./cmd/two"}, Dir: mod}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "two"} {
		if got := run(t, filepath.Join(out, n)); got != n {
			t.Errorf("%s printed %q", n, got)
		}
	}
}

// TestConcurrentProcessesBuildOnce runs two processes (this test binary)
// asking for the same build at once: one builds, the other waits and
// copies.
func TestConcurrentProcessesBuildOnce(t *testing.T) {
	if mod := os.Getenv("GOBUILD_TEST_CHILD"); mod != "" {
		// Hold the lock a while, so that the other process surely waits.
		beforeBuild = func() { time.Sleep(time.Second) }
		r, err := Build(filepath.Join(os.Getenv("GOBUILD_TEST_OUT"), "tiny"), Options{Pkgs: []string{"."}, Dir: mod, LDFlags: "-X main.version=3.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Built {
			os.Stdout.WriteString("CHILD BUILT\n")
		} else {
			os.Stdout.WriteString("CHILD CACHED\n")
		}
		return
	}
	useCache(t)
	mod := tinyModule(t, nil)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		out := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcessesBuildOnce$", "-test.v")
		cmd.Env = append(os.Environ(), "GOBUILD_TEST_CHILD="+mod, "GOBUILD_TEST_OUT="+out)
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &b)
		defer func() {
			if got := run(t, filepath.Join(out, "tiny")); got != "3.0.0 a" {
				t.Errorf("printed %q", got)
			}
		}()
	}
	built := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		built += strings.Count(outs[i].String(), "CHILD BUILT")
		if !strings.Contains(outs[i].String(), "CHILD ") {
			t.Fatalf("child %d said nothing:\n%s", i, outs[i])
		}
	}
	if built != 1 {
		t.Errorf("%d processes built; want 1\n%s\n%s", built, outs[0], outs[1])
	}
}

func TestOldGenerationsGo(t *testing.T) {
	cache := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{
		"idle7h": 7 * time.Hour, "used1h": time.Hour, "used2h": 2 * time.Hour, "used3h": 3 * time.Hour, "held8h": 8 * time.Hour,
	} {
		d := filepath.Join(cache, name)
		if err := os.MkdirAll(filepath.Join(d, "k"), 0o755); err != nil {
			t.Fatal(err)
		}
		if name == "held8h" {
			// Another process's generation is in use: it stays however old.
			if err := holdShared(filepath.Join(d, ".inuse")); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(d, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := generation(cache, "current"); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	// idle7h was idle too long; held8h cannot go and counts, so of the
	// others only the newest fits in three.
	want := "current held8h used1h"
	if lockingWorks && strings.Join(got, " ") != want {
		t.Errorf("generations left: %v; want %s", got, want)
	}
}
