// Package packaging holds the files the release packages carry besides the
// binaries: the systemd units, the deb/rpm maintainer scripts and the
// Windows installer's template. They are plain files, so that tests and
// other tools (a systemd-nspawn test, a hand-made image) can use them as
// they are; internal/release embeds them from here. docs/packaging.md
// says who owns what after an install.
package packaging

import "embed"

// FS holds systemd/, agent/, server/ and windows/.
//
//go:embed systemd agent server windows
var FS embed.FS
