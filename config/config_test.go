package config

import (
	"errors"
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

// Every kind of key, given a value of the wrong kind: the error names the
// key with its full path, the line, what was given and what a good value
// looks like; Load adds the file.
func TestValueErrorsNameKeyAndGoodValue(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"string given a list", "server: [a, b]", `line 1: server: a list, want a single value`},
		{"string given a mapping", "name: {a: b}", `line 1: name: a mapping, want a single value`},
		{"list given a string", "trusted_keys: /opt/molt/release.pub", `line 1: trusted_keys: "/opt/molt/release.pub", want a list (e.g. [a, b]`},
		{"mapping given a list", "labels: [a, b]", `line 1: labels: a list, want a mapping of names to values (e.g. {env: prod, role: db})`},
		{"mapping entry given a list", "labels:\n  env: [prod]", `line 2: labels.env: a list, want a single value`},
		{"int given a word", "disk_reserve_mb: lots", `line 1: disk_reserve_mb: "lots" is not a whole number (e.g. 500)`},
		{"int given a fraction", "disk_reserve_mb: 1.5", `line 1: disk_reserve_mb: "1.5" is not a whole number`},
		{"int too large", "disk_reserve_mb: 99999999999999999999", `disk_reserve_mb: "99999999999999999999" is not a whole number`},
		{"int negative", "disk_reserve_mb: -1", `disk_reserve_mb: -1 is negative, want megabytes, 0 or more (e.g. 500)`},
		{"pointer int given a word", "supervisor:\n  crash_budget: many", `line 2: supervisor.crash_budget: "many" is not a whole number (e.g. 500)`},
		{"pointer int negative", "supervisor:\n  crash_budget: -1", `supervisor.crash_budget: -1 is negative`},
		{"duration flow style", "supervisor: {ready_timeout: banana}", `line 1: supervisor.ready_timeout: "banana" is not a duration (e.g. 90s, 5m)`},
		{"duration block style", "supervisor:\n  watch: soon", `line 2: supervisor.watch: "soon" is not a duration (e.g. 90s, 5m)`},
		{"duration without unit", "supervisor:\n  stop_grace: 30", `supervisor.stop_grace: "30" is not a duration (e.g. 90s, 5m)`},
		{"duration negative", "supervisor:\n  stop_grace: -5s", `supervisor.stop_grace: "-5s" is negative, want a duration (e.g. 90s, 5m)`},
		{"duration given a list", "supervisor:\n  watch: [5m]", `line 2: supervisor.watch: not a single value, want a duration (e.g. 90s, 5m)`},
		{"section given a scalar", "supervisor: 3", `line 1: supervisor: "3", want a mapping of crash_budget, ready_timeout, stop_grace, watch`},
		{"unknown key suggests", "sever: https://x", `line 1: sever: unknown key; did you mean server? (known: `},
		{"unknown key, a prefix of a known one", "trusted: [a]", `line 1: trusted: unknown key; did you mean trusted_keys?`},
		{"unknown nested key", "supervisor:\n  crashbudget: 1", `line 2: supervisor.crashbudget: unknown key; did you mean crash_budget?`},
		{"key given twice", "cluster: a\ncluster: b", `line 2: cluster: given twice (first on line 1)`},
		{"top level a list", "- server", `line 1: (top level): a list, want keys and values`},
		{"enum", "log_level: loud", `log_level: "loud" is not one of debug, info, warn, error`},
		{"url", "server: ftp://x", `server: "ftp://x" is not an http(s) URL like https://molt.example.com:8443`},
		{"empty list item", "trusted_keys: ['']", `trusted_keys[0]: empty, want a .pub file path or an inline minisign key (RW...)`},
		{"not YAML", "server: [a", `not valid YAML: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v\nwant an error with %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestLoadErrorNamesFileLineAndKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte("cluster: c1\nsupervisor:\n  ready_timeout: banana\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	want := p + `:3: supervisor.ready_timeout: "banana" is not a duration (e.g. 90s, 5m)`
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "supervisor.ready_timeout" || ke.Line != 3 {
		t.Errorf("Load error %#v is not a KeyError for supervisor.ready_timeout on line 3", err)
	}
}

// Null values and comments keep the defaults, as before.
func TestParseNullsKeepDefaults(t *testing.T) {
	c, err := Parse([]byte("# just a comment\nserver:\nsupervisor:\nlabels: {env: prod}\n"))
	if err != nil || c.Server != "" || c.Labels["env"] != "prod" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	if _, err := Parse([]byte("# only comments\n")); err != nil {
		t.Fatalf("comments only: %v", err)
	}
}
