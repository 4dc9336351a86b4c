package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
server: https://molt.example.com:8443
ca_file: /opt/molt/ca.pem
enrollment_token: abc
trusted_keys: [/opt/molt/release.pub]
labels: {env: prod, role: db}
cluster: db-east
supervisor:
  ready_timeout: 30s
  crash_budget: 3
  watch: 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "https://molt.example.com:8443" || c.Labels["role"] != "db" || c.Cluster != "db-east" {
		t.Errorf("parsed %+v", c)
	}
	if time.Duration(c.Supervisor.ReadyTimeout) != 30*time.Second || *c.Supervisor.CrashBudget != 3 || time.Duration(c.Supervisor.Watch) != 2*time.Minute {
		t.Errorf("supervisor section %+v", c.Supervisor)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sever: https://x", "sever"},
		{"server: ftp://x", "server"},
		{"supervisor:\n  watch: soon", `"soon" is not a duration`},
		{"supervisor:\n  crash_budget: -1", "supervisor.crash_budget"},
		{"supervisor:\n  crashbudget: 1", "crashbudget"},
		{"log_level: loud", "log_level"},
		{"labels: {'a b': x}", "labels"},
		{"trusted_keys: ['']", "trusted_keys[0]"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error naming %q", tc.in, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte("cluster: c1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Cluster != "c1" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	if err := os.WriteFile(p, []byte(strings.Repeat("#", MaxSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Error("oversized file accepted")
	}
}
