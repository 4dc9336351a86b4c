//go:build !unix

package store

import "testing"

func postgresDSN(t *testing.T) string {
	t.Skip("the PostgreSQL tests start a cluster with Debian's tools: unix only")
	return ""
}
