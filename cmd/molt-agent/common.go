package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
)

// homeFlag adds --home to cmd.
func homeFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "home", "", fmt.Sprintf("agent home directory (default $MOLT_HOME, else %s)", defaultHomeText()))
}

func defaultHomeText() string {
	switch runtime.GOOS {
	case "windows":
		return `C:\ProgramData\molt`
	case "darwin":
		return "/Library/molt"
	}
	return "/opt/molt"
}

// loadHomeConfig reads the configuration the daemon would use: --config
// when given (must exist), else the home's agent.yaml (may be missing),
// with the environment applied.
func loadHomeConfig(h home.Home, path string) (*config.Config, error) {
	required := path != ""
	if path == "" {
		path = h.ConfigPath()
	}
	c, _, err := agent.LoadConfig(path, required, os.Getenv, agent.Overrides{})
	return c, err
}

// say prints a line of progress for a person.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}

// rel shows p relative to the home when it is inside it.
func rel(h home.Home, p string) string {
	if r, err := filepath.Rel(h.Dir, p); err == nil && r != "" && r[0] != '.' {
		return filepath.ToSlash(r)
	}
	return p
}

func parseConfig(b []byte) (*config.Config, error) { return config.Parse(b) }
