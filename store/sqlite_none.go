//go:build solaris || aix

package store

import (
	"context"
	"errors"
)

// modernc.org/sqlite has no port to these systems; the molt command still
// builds there for its operator CLI and pack tooling, and a server there
// can use PostgreSQL.
func openSQLite(ctx context.Context, path string) (*DB, error) {
	return nil, errors.New("the embedded SQLite store does not run on this platform (modernc.org/sqlite does not support it): use --store postgres://..., or run the server on linux, windows, darwin, freebsd or openbsd (agents on this platform are fully supported)")
}
