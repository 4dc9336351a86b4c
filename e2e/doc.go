// Package e2e holds molt's end-to-end tests: the real molt, molt-agent and
// molt-supervisor binaries, built at two versions by internal/e2etest, run
// as processes on loopback in temporary homes and driven through the molt
// CLI the way an operator would. It has no code of its own outside tests.
package e2e
