//go:build unix

package store

import (
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// postgresDSN is a new, empty database in the package's PostgreSQL
// cluster.
func postgresDSN(t *testing.T) string { return pgtest.SharedDB(t) }
