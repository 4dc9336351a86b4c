//go:build !unix

package server

import "testing"

func benchPostgres(t *testing.T) (string, func() []int) {
	t.Skip("MOLT_BENCH_STORE=postgres: the benchmark's PostgreSQL cluster (internal/pgtest) runs on Unix only")
	return "", nil
}
