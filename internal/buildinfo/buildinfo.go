// Package buildinfo holds the version stamped into every molt binary at
// build time (scripts/build.sh sets it with -ldflags -X).
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit are set by the linker:
//
//	-X github.com/moltfleet/molt/internal/buildinfo.Version=1.5.0
//	-X github.com/moltfleet/molt/internal/buildinfo.Commit=abc123
var (
	Version = "0.0.0-dev"
	Commit  = ""
)

// Info describes one binary.
type Info struct {
	Program   string `json:"program"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the build information of the running binary.
func Get(program string) Info {
	commit := Commit
	if commit == "" {
		commit = vcsRevision()
	}
	return Info{
		Program:   program,
		Version:   Version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  Platform(),
	}
}

// Platform is the running binary's GOOS/GOARCH, the key packs use.
func Platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return "unknown"
}
