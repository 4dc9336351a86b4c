// Package faults marks crash points on the upgrade path: places where a
// test kills the process with SIGKILL (TerminateProcess on Windows) to
// prove that every step survives a crash.
//
// The points exist only in binaries built with the build tag "faults".
// Without it Point and PointAfterFlush are empty and inlined away, and
// their names do not reach the binary; faults/ asserts that of release
// builds.
//
// In a faults build the environment chooses the point:
//
//	MOLT_FAULT=agent/mid-download@3  kill at the third time the point is passed
//	MOLT_FAULT_VERSION=1.1.0         only in a binary of this version
//	MOLT_FAULT_ONCE=/tmp/x/fired     only if this file does not exist yet; it is
//	                                 created first, so a restarted process (which
//	                                 inherits the environment) runs on
package faults
