package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveConnPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "noconfig"))
	tokFile := filepath.Join(dir, "tok")
	os.WriteFile(tokFile, []byte("file-token\n"), 0o600)
	cfg := filepath.Join(dir, "cli.yaml")
	os.WriteFile(cfg, []byte("server: https://from-file:1\ntoken_file: "+tokFile+"\nca: /file/ca.pem\n"), 0o600)

	tests := []struct {
		name              string
		flags             connFlags
		env               map[string]string
		server, token, ca string
		wantErr           string
	}{
		{name: "file only", flags: connFlags{config: cfg},
			server: "https://from-file:1", token: "file-token", ca: "/file/ca.pem"},
		{name: "env beats file", flags: connFlags{config: cfg},
			env:    map[string]string{envServer: "https://env:2", envToken: "env-token", envCA: "/env/ca.pem"},
			server: "https://env:2", token: "env-token", ca: "/env/ca.pem"},
		{name: "flags beat env", flags: connFlags{config: cfg, server: "https://flag:3", tokenFile: tokFile, ca: "/flag/ca.pem"},
			env:    map[string]string{envServer: "https://env:2", envToken: "env-token"},
			server: "https://flag:3", token: "file-token", ca: "/flag/ca.pem"},
		{name: "config from env", env: map[string]string{envCLIConfig: cfg},
			server: "https://from-file:1", token: "file-token", ca: "/file/ca.pem"},
		{name: "nothing", wantErr: "no server configured: pass --server"},
		{name: "explicit config missing", flags: connFlags{config: filepath.Join(dir, "nope.yaml")}, wantErr: "no such file"},
		{name: "token and token file", flags: connFlags{server: "https://x:1", token: "a", tokenFile: tokFile}, wantErr: "give one of them"},
		{name: "token file missing", flags: connFlags{server: "https://x:1", tokenFile: filepath.Join(dir, "none")}, wantErr: "token file (--token-file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := resolveConn(&tt.flags, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Server != tt.server || c.Token != tt.token || c.CA != tt.ca {
				t.Fatalf("got %q %q %q, want %q %q %q", c.Server, c.Token, c.CA, tt.server, tt.token, tt.ca)
			}
		})
	}
}

func TestTokenFileModeWarning(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(p, []byte("secret"), 0o644)
	c, err := resolveConn(&connFlags{server: "https://x:1", tokenFile: p}, func(string) string { return "" })
	if err != nil || c.Token != "secret" || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "chmod 600") {
		t.Fatalf("%+v %v", c, err)
	}
	os.Chmod(p, 0o600)
	if c, _ := resolveConn(&connFlags{server: "https://x:1", tokenFile: p}, func(string) string { return "" }); len(c.Warnings) != 0 {
		t.Fatalf("warnings for a 0600 file: %v", c.Warnings)
	}
}

func TestCLIFileUnknownKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cli.yaml")
	os.WriteFile(p, []byte("sever: https://x\n"), 0o600)
	_, err := resolveConn(&connFlags{config: p}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "sever") {
		t.Fatalf("error %v", err)
	}
}
