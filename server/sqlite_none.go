//go:build solaris || aix

package server

// modernc.org/sqlite has no port to these systems; the molt command still
// builds there for its operator CLI and pack tooling.
const sqliteAvailable = false
