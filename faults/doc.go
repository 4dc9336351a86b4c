// Package faults holds molt's fault-injection suites and the tools they
// use: the crash-point suite kills the agent, the supervisor and the
// server with SIGKILL at each named crash point (internal/faults) along an
// upgrade and checks that the host and the server recover; the network
// suite puts a Proxy between agent and server that cuts connections,
// refuses them for a while, and flaps.
//
// The suites build the real binaries with the build tag "faults" and run
// them as real processes (internal/e2etest). See docs/faults.md.
package faults
