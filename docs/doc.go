// Package docs is the project's documentation. It holds no code: its test
// (design_test.go) keeps design.md by the code, failing when a contract the
// design states (a path of the home, an exit code, a state, a role, a
// default) disagrees with the Go constants that implement it.
package docs
