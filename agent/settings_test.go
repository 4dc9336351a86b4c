package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte("server: https://file.example:8443\nname: from-file\nlabels: {env: file}\ncluster: c-file\nlog_level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type want struct {
		Server, Name, Cluster, LogLevel string
		Labels                          map[string]string
		From                            map[string]string
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		o    Overrides
		want want
	}{
		{
			name: "file only",
			want: want{Server: "https://file.example:8443", Name: "from-file", Cluster: "c-file", LogLevel: "warn",
				Labels: map[string]string{"env": "file"}, From: map[string]string{}},
		},
		{
			name: "environment over file",
			env:  map[string]string{EnvServer: "https://env.example", EnvLabels: "env=prod, role=db", EnvLogLevel: "debug"},
			want: want{Server: "https://env.example", Name: "from-file", Cluster: "c-file", LogLevel: "debug",
				Labels: map[string]string{"env": "prod", "role": "db"},
				From:   map[string]string{"server": EnvServer, "labels": EnvLabels, "log_level": EnvLogLevel}},
		},
		{
			name: "flag over environment over file",
			env:  map[string]string{EnvServer: "https://env.example", EnvName: "from-env"},
			o:    Overrides{Server: "https://flag.example", Labels: map[string]string{"k": "v"}},
			want: want{Server: "https://flag.example", Name: "from-env", Cluster: "c-file", LogLevel: "warn",
				Labels: map[string]string{"k": "v"},
				From:   map[string]string{"server": "flag", "name": EnvName, "labels": "flag"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, src, err := LoadConfig(file, true, func(k string) string { return tc.env[k] }, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			got := want{Server: c.Server, Name: c.Name, Cluster: c.Cluster, LogLevel: c.LogLevel, Labels: c.Labels, From: src.From}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestLoadConfigErrorsNameKeyAndSource(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("servr: https://x\n"), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("log_level: info\n"), 0o600)
	for _, tc := range []struct {
		name, path string
		required   bool
		env        map[string]string
		o          Overrides
		want       []string
	}{
		{name: "unknown key in file", path: bad, want: []string{"servr", "bad.yaml"}},
		{name: "missing file named with --config", path: filepath.Join(dir, "nope.yaml"), required: true, want: []string{"nope.yaml", "not found"}},
		{name: "bad env value", path: good, env: map[string]string{EnvServer: "ftp://x"}, want: []string{"server (from MOLT_SERVER)", "ftp://x"}},
		{name: "bad flag value", path: good, o: Overrides{LogLevel: "loud"}, want: []string{"log_level (from flag)", "loud"}},
		{name: "bad env labels", path: good, env: map[string]string{EnvLabels: "novalue"}, want: []string{"MOLT_LABELS", "novalue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadConfig(tc.path, tc.required, func(k string) string { return tc.env[k] }, tc.o)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoadConfigMissingOptionalFile(t *testing.T) {
	c, src, err := LoadConfig(filepath.Join(t.TempDir(), "agent.yaml"), false, func(string) string { return "" }, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "" || src.File != "" {
		t.Errorf("got server %q file %q, want a local-only default", c.Server, src.File)
	}
}
