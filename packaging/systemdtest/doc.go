// Package systemdtest holds the tests of molt's Linux packages under a
// real init: a Debian root booted with systemd (or sysvinit with OpenRC)
// in a systemd-nspawn container (internal/nspawn), the .deb packages the
// release makes installed in it, the supervisor's and the server's units
// started, killed, upgraded, stopped and removed as on a host. It has no
// code of its own: see docs/packaging.md#under-a-real-systemd-and-openrc.
package systemdtest
