//go:build unix

package server

import (
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
)

// benchPostgres starts a throwaway PostgreSQL cluster for one benchmark
// (removed when it ends) and returns its database's DSN and a way to list
// its processes.
func benchPostgres(t *testing.T) (dsn string, pids func() []int) {
	c := pgtest.Start(t)
	return c.CreateDB(t, "molt"), c.PIDs
}
