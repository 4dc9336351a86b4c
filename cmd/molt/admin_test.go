package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
	"github.com/moltfleet/molt/store"
)

// molt admin backup copies a running server's database: the copy holds
// what the server committed and opens as a store; bad input is a usage
// error or a one-line failure, and nothing is overwritten.
func TestAdminBackup(t *testing.T) {
	dir := t.TempDir()
	srv, _, _ := inProcessServer(t, dir, server.Options{})
	ctx := context.Background()
	for _, role := range []string{protocol.RoleViewer, protocol.RoleOperator} {
		if _, err := srv.CreateToken(ctx, role, role); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	out := filepath.Join(dir, "b", "molt-backup.db")
	stdout, stderr, code := runPack(t, "admin", "backup", "--data", data, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var info store.BackupInfo
	if err := json.Unmarshal([]byte(stdout), &info); err != nil || info.Path != out || info.SchemaVersion == 0 {
		t.Fatalf("--json: %s (%v)", stdout, err)
	}
	cp, err := store.Open(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := cp.Tokens(ctx)
	cp.Close()
	if err != nil || len(toks) != 2 {
		t.Fatalf("the copy holds %d tokens (%v), want the 2 the server made", len(toks), err)
	}

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"admin", "backup", "--data", data}, 2, "--out is required"},
		{[]string{"admin", "backup", "--data", data, "--out", out}, 1, "exists"},
		{[]string{"admin", "backup", "--data", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "c.db")}, 1, "none"},
	} {
		_, stderr, code := runPack(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.msg) {
			t.Errorf("molt %s: exit %d %q, want %d and %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.msg)
		}
	}
}
