//go:build !unix

package server

import "testing"

func testStore(t testing.TB) string { return "" }

func cleanupTestStore() {}
