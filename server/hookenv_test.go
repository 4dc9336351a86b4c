package server

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHookEnv(t *testing.T) {
	cases := []struct {
		name    string
		environ []string
		own     []string
		want    []string
	}{
		{
			name:    "only the allow-list and the hook's own variables",
			environ: []string{"PATH=/usr/bin", "HOME=/home/molt", "LANG=C.UTF-8", "LC_TIME=de_DE", "TZ=UTC", "DB_PASSWORD=hunter2", "AWS_SECRET_ACCESS_KEY=k"},
			own:     []string{"MOLT_RUN_ID=r-1"},
			want:    []string{"PATH=/usr/bin", "HOME=/home/molt", "LANG=C.UTF-8", "LC_TIME=de_DE", "TZ=UTC", "MOLT_RUN_ID=r-1"},
		},
		{
			name:    "the server's own MOLT_ variables stay with the server",
			environ: []string{"PATH=/bin", "MOLT_TOKEN=secret", "MOLT_HOOK_ENV=SLACK_URL", "SLACK_URL=https://hooks.example/x"},
			own:     []string{"MOLT_RUN_ID=r-2"},
			want:    []string{"PATH=/bin", "SLACK_URL=https://hooks.example/x", "MOLT_RUN_ID=r-2"},
		},
		{
			name:    "MOLT_HOOK_ENV lists names separated by commas or spaces, a MOLT_ name too",
			environ: []string{"A=1", "B=2", "C=3", "MOLT_SERVER=https://molt", "D=4", "MOLT_HOOK_ENV=A, B\tC MOLT_SERVER"},
			want:    []string{"A=1", "B=2", "C=3", "MOLT_SERVER=https://molt"},
		},
		{
			name:    "the hook's variables win over the server's of the same name",
			environ: []string{"MOLT_RUN_ID=stale", "MOLT_HOOK_ENV=MOLT_RUN_ID"},
			own:     []string{"MOLT_RUN_ID=r-3"},
			want:    []string{"MOLT_RUN_ID=r-3"},
		},
		{
			name:    "entries without a name are dropped",
			environ: []string{"=C:=C:\\molt", "PATH=/bin", "junk"},
			want:    []string{"PATH=/bin"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, hookEnv(tc.environ, tc.own)); diff != "" {
				t.Errorf("hookEnv (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHookEnvRealProcess runs a hook that writes its environment to a file
// with the server's real environment holding a secret.
func TestHookEnvRealProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hook is a shell script")
	}
	t.Setenv("MOLT_TEST_DB_PASSWORD", "hunter2")
	t.Setenv("MOLT_TEST_PASSED", "listed")
	t.Setenv(hookEnvVar, "MOLT_TEST_PASSED")
	e := newEnv(t)
	out := filepath.Join(e.dir, "env.out")
	script := filepath.Join(e.dir, "env.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	j := hookJob{Name: "hooks.on-run-end", Command: script + " " + out, Timeout: 10 * time.Second, Run: 7,
		Env: []string{"MOLT_RUN_ID=r-7", "MOLT_RUN_STATUS=ENDED_OK"}}
	e.s.hooks.exec(context.Background(), j)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	got := map[string]string{}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for k, want := range map[string]string{"PATH": os.Getenv("PATH"), "MOLT_RUN_ID": "r-7", "MOLT_RUN_STATUS": "ENDED_OK", "MOLT_TEST_PASSED": "listed"} {
		if got[k] != want {
			t.Errorf("hook sees %s=%q, want %q (it sees %v)", k, got[k], want, names)
		}
	}
	for _, k := range []string{"MOLT_TEST_DB_PASSWORD", hookEnvVar} {
		if v, ok := got[k]; ok {
			t.Errorf("hook sees the server's %s=%q", k, v)
		}
	}
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("the secret reached the hook:\n%s", b)
	}
}
