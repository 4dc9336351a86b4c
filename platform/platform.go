// Package platform holds everything that differs between operating systems:
// default paths, passing the control channel to a child, process identity and
// stop signals, executable replacement, free disk, machine identity and
// service installation. Callers see one API; each OS has its own file.
package platform

import (
	"errors"
	"os"
	"runtime"
)

// ErrNotSupported is returned by operations this OS cannot do.
var ErrNotSupported = errors.New("not supported on " + runtime.GOOS)

// ExeSuffix is ".exe" on Windows and empty elsewhere.
func ExeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// OSFamily is the family version policy and activation upgrade are set
// per: linux, windows or unix (macOS, the BSDs, Solaris, AIX).
func OSFamily() string {
	switch runtime.GOOS {
	case "linux", "windows":
		return runtime.GOOS
	default:
		return "unix"
	}
}

// DefaultHome is the agent home when neither --home nor MOLT_HOME is given.
func DefaultHome() string {
	if h := os.Getenv("MOLT_HOME"); h != "" {
		return h
	}
	return osDefaultHome()
}

// osDefaultHome is the OS's default home, regardless of MOLT_HOME: the home
// whose service keeps the plain name "molt-supervisor".
func osDefaultHome() string {
	switch runtime.GOOS {
	case "windows":
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return pd + `\molt`
	case "darwin":
		return "/Library/molt"
	default:
		return "/opt/molt"
	}
}
