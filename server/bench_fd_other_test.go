//go:build !unix

package server

// fdLimit: no descriptor limit to check here.
func fdLimit() (soft, hard uint64, ok bool) { return 0, 0, false }
