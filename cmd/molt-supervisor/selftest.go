package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/supervisor"
)

func newSelftestCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "selftest",
		Short: "Check that this supervisor can run the home",
		Long: `selftest checks what this supervisor needs to run the home: state/active.json
reads and names a complete version (.valid) whose molt-agent exists, agent.yaml
(if present) parses, and state/, logs/ and bin/ are writable. It exits 0 when
all is well; otherwise it prints each problem on a line and exits 1.

A running supervisor runs the selftest of a staged supervisor before it
installs it over itself.`,
		Example: `  molt-supervisor selftest --home /opt/molt`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			problems := supervisor.Selftest(home.New(dir))
			if asJSON {
				msgs := []string{}
				for _, p := range problems {
					msgs = append(msgs, p.Error())
				}
				if err := cli.PrintJSON(cmd.OutOrStdout(), map[string]any{"ok": len(problems) == 0, "problems": msgs}); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), "selftest:", p)
				}
			}
			if len(problems) > 0 {
				return cli.Exit(1, nil)
			}
			if !asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), "selftest: ok")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "home", "", "agent home (default $MOLT_HOME, else the OS default)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
