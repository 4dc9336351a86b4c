package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadServeConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := loadServeConfig(write("listen: 0.0.0.0:9443\ndata: /var/lib/molt\ntrusted_keys: [/etc/molt/release.pub]\ntls_cert: c.pem\ntls_key: k.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9443" || c.Data != "/var/lib/molt" || len(c.TrustedKeys) != 1 || c.TLSCert != "c.pem" {
		t.Fatalf("%+v", c)
	}
	if _, err := loadServeConfig(write("listen: x\nlisten_addr: y\n")); err == nil || !strings.Contains(err.Error(), "listen_addr") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := loadServeConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

func TestServeFlagsOverrideConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	os.WriteFile(cfg, []byte("data: /nonexistent/from-config\n"), 0o600)
	root := newRootCmd()
	data := t.TempDir()
	root.SetArgs([]string{"serve", "--config", cfg, "--data", data, "--listen", "127.0.0.1:0"})
	root.SetOut(new(strings.Builder))
	root.SetErr(new(strings.Builder))
	err := root.Execute()
	// Without a certificate the server refuses to start, after it resolved
	// the data directory from the flag, not the config file.
	if err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat("/nonexistent/from-config"); !os.IsNotExist(err) {
		t.Fatal("the config file's data directory was used")
	}
	if _, err := os.Stat(data); err != nil {
		t.Fatal(err)
	}
}

// Errors in the config file name the file, the line and the key, in one line.
func TestServeConfigErrorsNameKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "server.yaml")
	for _, tc := range []struct{ body, want string }{
		{"data: /var/lib/molt\nlisten: [a, b]\n", p + `:2: listen: a list, want a single value`},
		{"trusted_keys: release.pub\n", p + `:1: trusted_keys: "release.pub", want a list`},
		{"listen_addr: x\n", p + `:1: listen_addr: unknown key; did you mean listen?`},
	} {
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadServeConfig(p)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v\nwant one line starting %q", tc.body, err, tc.want)
		}
	}
}
