package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// BackupInfo describes a backup Backup wrote.
type BackupInfo struct {
	Path          string    `json:"path"`
	Bytes         int64     `json:"bytes"`
	SchemaVersion int       `json:"schema_version"`
	Agents        int       `json:"agents"`
	Deployments   int       `json:"deployments"`
	Events        int       `json:"events"`
	Taken         time.Time `json:"taken"`
}

// Backup writes a consistent copy of the SQLite database at src to the
// new file dst while servers keep using src: one read transaction's
// snapshot (VACUUM INTO), compacted. It then opens the copy and counts
// what it holds, so a backup that cannot be restored is not reported as
// one. dst must not exist. PostgreSQL databases are backed up with
// pg_dump (docs/server.md).
func Backup(ctx context.Context, src, dst string) (BackupInfo, error) {
	if IsPostgres(src) {
		return BackupInfo{}, errors.New("backup: a PostgreSQL store is backed up with pg_dump -Fc (docs/server.md)")
	}
	if _, err := os.Stat(src); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return BackupInfo{}, fmt.Errorf("backup: %s exists: give a new file", dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	// Read-only, and without migrating: the server that uses src may be
	// older than this molt. One transaction's snapshot; the server's
	// writer goes on meanwhile.
	db, err := sql.Open("sqlite", readOnlyDSN(src))
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	taken := time.Now().UTC()
	_, err = db.ExecContext(ctx, `VACUUM INTO ?`, dst)
	db.Close()
	if err != nil {
		os.Remove(dst)
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := os.Chmod(dst, 0o600); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	info := BackupInfo{Path: dst, Taken: taken}
	cp, err := sql.Open("sqlite", readOnlyDSN(dst))
	if err != nil {
		return info, fmt.Errorf("backup %s does not open: %w", dst, err)
	}
	defer cp.Close()
	var integrity string
	if err := cp.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		return info, fmt.Errorf("backup %s: integrity check: %q %v", dst, integrity, err)
	}
	for _, c := range []struct {
		q string
		n *int
	}{
		{`SELECT COALESCE(MAX(version), 0) FROM migrations`, &info.SchemaVersion},
		{`SELECT COUNT(*) FROM agents`, &info.Agents},
		{`SELECT COUNT(*) FROM deployments`, &info.Deployments},
		{`SELECT COUNT(*) FROM events`, &info.Events},
	} {
		if err := cp.QueryRowContext(ctx, c.q).Scan(c.n); err != nil {
			return info, fmt.Errorf("backup %s: %w", dst, err)
		}
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return info, err
	}
	info.Bytes = fi.Size()
	return info, nil
}

// readOnlyDSN opens the SQLite file at path for reading only.
func readOnlyDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	return "file:" + path + "?" + q.Encode() + "&mode=ro"
}
