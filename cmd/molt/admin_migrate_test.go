//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
	"github.com/moltfleet/molt/store"
)

// TestHelperHoldLock is not a test: run by holdLock as another process,
// it holds MOLT_TEST_HOLD_LOCK (a serve.lock) until its stdin closes.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv("MOLT_TEST_HOLD_LOCK")
	if path == "" {
		t.Skip("a helper process of holdLock")
	}
	l, err := platform.LockProcess(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// holdLock holds path from another process, as a running molt serve
// holds DATA/serve.lock, until the test ends.
func holdLock(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "MOLT_TEST_HOLD_LOCK="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("lock helper: %q", line)
	}
}

// molt admin migrate-store copies a SQLite server's state into an empty
// PostgreSQL database; it refuses bad flags, a source whose server runs
// (unless --allow-running), and a target that holds molt data.
func TestAdminMigrateStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster (skipped with -short)")
	}
	dir := t.TempDir()
	srv, _, _ := inProcessServer(t, dir, server.Options{})
	ctx := context.Background()
	if _, err := srv.CreateToken(ctx, protocol.RoleViewer, "viewer"); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "molt")

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--to", dsn}, 2, "--from is required"},
		{[]string{"--from", data}, 2, "--to is required"},
		{[]string{"--from", data, "--to", "/tmp/x.db"}, 2, "want a postgres:// URL"},
		{[]string{"--from", data, "--to", dsn, "--artifacts", "/srv/packs"}, 2, "want s3://"},
		{[]string{"--from", filepath.Join(dir, "none"), "--to", dsn}, 1, "no molt.db there"},
	} {
		_, stderr, code := runPack(t, append([]string{"admin", "migrate-store"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.msg) {
			t.Errorf("migrate-store %s: exit %d %q, want %d and %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.msg)
		}
	}

	stdout, stderr, code := runPack(t, "admin", "migrate-store", "--from", data, "--to", dsn, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res migrateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Store.Rows == 0 || res.Running {
		t.Fatalf("--json: %s (%v)", stdout, err)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := db.Tokens(ctx)
	db.Close()
	if err != nil || len(toks) != 1 {
		t.Fatalf("the target holds %d tokens (%v), want the server's 1", len(toks), err)
	}

	_, stderr, code = runPack(t, "admin", "migrate-store", "--from", data, "--to", dsn)
	if code != 1 || !strings.Contains(stderr, "already holds molt data") || !strings.Contains(stderr, "1 rows in tokens") {
		t.Errorf("into a database that holds molt data: exit %d %q", code, stderr)
	}

	holdLock(t, filepath.Join(data, "serve.lock"))
	other := pg.CreateDB(t, "other")
	_, stderr, code = runPack(t, "admin", "migrate-store", "--from", data, "--to", other)
	if code != 1 || !strings.Contains(stderr, "stop it first") {
		t.Errorf("while molt serve runs: exit %d %q, want 1 and a refusal", code, stderr)
	}
	stdout, stderr, code = runPack(t, "admin", "migrate-store", "--from", data, "--to", other, "--allow-running")
	if code != 0 || !strings.Contains(stderr, "NOT carried over") || !strings.Contains(stdout, "was running") {
		t.Errorf("--allow-running: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
