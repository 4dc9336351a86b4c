//go:build unix

package server

import (
	"os"
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
)

// testStore is the store a test server runs on: "" (SQLite in its data
// directory) unless MOLT_TEST_STORE=postgres, which runs the package's
// tests on PostgreSQL, a new database each (CI does both).
func testStore(t testing.TB) string {
	if os.Getenv("MOLT_TEST_STORE") != "postgres" {
		return ""
	}
	return pgtest.SharedDB(t)
}

func cleanupTestStore() { pgtest.Cleanup() }
