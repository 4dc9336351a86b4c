package testtool

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeT records how a helper ended the test. Skip and Fatal end the
// goroutine as the real ones do.
type fakeT struct {
	testing.TB
	ended string // "", "skip" or "fail"
	msg   string
	logs  []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Skip(args ...any) {
	f.ended, f.msg = "skip", fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.ended, f.msg = "fail", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// call runs fn with a fakeT on a goroutine of its own, as Goexit needs.
func call(t *testing.T, fn func(tb testing.TB)) *fakeT {
	f := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestRequired(t *testing.T) {
	cases := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"1", "", true},
		{"false", "", false},
		{"", "1", true},
		{"true", "0", false},
		{"", "0", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("CI=%q %s=%q", tc.ci, RequireVar, tc.require), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv(RequireVar, tc.require)
			if got := Required(); got != tc.want {
				t.Errorf("Required() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNeed(t *testing.T) {
	bin := t.TempDir()
	tool := filepath.Join(bin, "molt-test-tool")
	if runtime.GOOS == "windows" {
		tool += ".exe"
	}
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	cases := []struct {
		name     string
		tool     string
		required string
		ended    string
	}{
		{"found", "molt-test-tool", "0", ""},
		{"missing skips with how to get it", "molt-no-such-tool", "0", "skip"},
		{"missing fails when tools are required", "molt-no-such-tool", "1", "fail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireVar, tc.required)
			var path string
			f := call(t, func(tb testing.TB) { path = Need(tb, tc.tool, "apt-get install it") })
			if f.ended != tc.ended {
				t.Fatalf("ended %q (%s), want %q", f.ended, f.msg, tc.ended)
			}
			if tc.ended == "" && path != tool {
				t.Errorf("path %q, want %q", path, tool)
			}
			if tc.ended != "" && !strings.Contains(f.msg, tc.tool+" not found: apt-get install it") {
				t.Errorf("message %q does not say what is missing and how to get it", f.msg)
			}
		})
	}
}

func TestHave(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(RequireVar, "0")
	var ok bool
	f := call(t, func(tb testing.TB) { _, ok = Have(tb, "molt-no-such-tool", "install it") })
	if ok || f.ended != "" || len(f.logs) != 1 || !strings.Contains(f.logs[0], "step skipped") {
		t.Fatalf("optional step: ok %v, ended %q, logs %q", ok, f.ended, f.logs)
	}
	t.Setenv(RequireVar, "1")
	if f := call(t, func(tb testing.TB) { Have(tb, "molt-no-such-tool", "install it") }); f.ended != "fail" {
		t.Fatalf("required step: ended %q", f.ended)
	}
}
