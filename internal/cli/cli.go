// Package cli holds what the three molt commands share: the typed error that
// carries an exit code, cobra's own refusals mapped to usage errors (exit
// 2), the version command, and logger construction.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/buildinfo"
)

// ExitError is an error that asks the process to exit with Code. Its
// message, when not empty, is printed as one line on stderr.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err so that Main exits with code. A nil err exits silently.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Usage marks err as a usage error (exit code 2).
func Usage(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// Main runs root and returns the process exit code. Errors are printed once,
// as "program: message"; an *ExitError decides the code (1 otherwise), and
// every refusal of cobra's own (unknown command or flag, bad flag value,
// wrong number of arguments) is a usage error, exit 2.
func Main(root *cobra.Command, args []string, stderr io.Writer) int {
	usageErrors(root)
	root.SetArgs(args)
	root.SilenceUsage = true
	root.SilenceErrors = true
	err := root.Execute()
	if err == nil {
		return 0
	}
	code := 1
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return code
}

// NewVersionCommand answers "version" and "version --json".
func NewVersionCommand(program string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get(program)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprintf(out, "%s %s (commit %s, %s, %s)\n",
				info.Program, info.Version, info.Commit, info.GoVersion, info.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// PrintJSON writes v indented to w.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Stderr is where commands print progress and warnings.
var Stderr io.Writer = os.Stderr
