package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A backup taken while a server writes is a consistent, complete copy of
// what was committed before it began, readable as a store; it refuses to
// overwrite a file, and a PostgreSQL store.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "molt.db")
	db, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 50 {
		seed(t, db, `INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, 'fp', 1, '{}')`, fmt.Sprintf("a-%d", i), fmt.Sprintf("h-%d", i))
	}
	event := func() error {
		return db.Update(ctx, func(tx *Tx) error {
			return tx.InsertEvent(Event{ID: 101, Name: "test", Message: "m"})
		})
	}
	for range 100 {
		if err := event(); err != nil {
			t.Fatal(err)
		}
	}
	// The server goes on writing during the backup.
	stop := make(chan struct{})
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := event(); err != nil {
				done <- err
				return
			}
			written.Add(1)
		}
	}()
	dst := filepath.Join(dir, "backups", "molt-backup.db")
	info, err := Backup(ctx, src, dst)
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatalf("the server's writes during the backup: %v", werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if info.Agents != 50 || info.Events < 100 || int64(info.Events) > 100+written.Load() || info.SchemaVersion != len(migrations) || info.Bytes == 0 {
		t.Fatalf("backup %+v (%d events written during it)", info, written.Load())
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	// It is a store: it opens and reads.
	cp, err := Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	seq, err := cp.LastEventSeq(ctx)
	if err != nil || seq < 100 {
		t.Fatalf("the copy's last event %d, %v", seq, err)
	}

	if _, err := Backup(ctx, src, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("over an existing file: %v", err)
	}
	if _, err := Backup(ctx, "postgres://molt@db/molt", filepath.Join(dir, "x.db")); err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("a PostgreSQL store: %v", err)
	}
	if _, err := Backup(ctx, filepath.Join(dir, "none.db"), filepath.Join(dir, "y.db")); err == nil {
		t.Fatal("a missing database was backed up")
	}
}
