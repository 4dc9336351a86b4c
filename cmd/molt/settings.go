package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newSettingsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Read and change server settings (version policy, activation upgrade, hooks)",
		Long: `Settings are keys with string values. "molt settings list" shows every key
the server knows, with its value and whether it is the default. Among them:

  version.<goos>/<goarch>          latest | <version> | none
      the version agents of that platform should run (version control);
      also the target of upgrade on activation
  activation-upgrade.<family>      true | false   (family: linux, windows, unix)
      upgrade an agent that enrolls with another version than its target
  window.<label>=<value>           a maintenance window, e.g. "Mon-Fri 01:00-05:00 Europe/Berlin"
      deployments of runs start on agents with that label only inside it
      (docs/rollouts.md, syntax in docs/windows.md); reset removes it
  hooks.on-deployment-end          a command the server runs when a deployment ends
  hooks.on-run-end                 a command the server runs when a run ends
      with MOLT_RUN_ID, MOLT_RUN_TEXT, MOLT_RUN_STATUS (ENDED_OK|ENDED_NOT_OK),
      MOLT_AGENT, MOLT_DEPLOYMENT_ID, MOLT_DEPLOYMENT_STATUS, MOLT_WAVE in the environment

Changing a setting needs the admin role.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newSettingsListCmd(cf), newSettingsGetCmd(cf), newSettingsSetCmd(cf), newSettingsResetCmd(cf))
	return cmd
}

func newSettingsListCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every setting and its value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ss, err := c.Settings(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), nonNil(ss))
			}
			return printSettings(cmd.OutOrStdout(), ss)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

func printSettings(w io.Writer, ss []protocol.Setting) error {
	tw := newTable(w)
	row(tw, "KEY", "VALUE")
	for _, s := range ss {
		v := s.Value
		if v == "" {
			v = `""`
		}
		if s.Default {
			row(tw, s.Key, v, "(default)")
			continue
		}
		row(tw, s.Key, v)
	}
	return tw.Flush()
}

func newSettingsGetCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print one setting's value",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.Setting(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), s.Value)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newSettingsSetCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Change one setting (admin)",
		Example: `  molt settings set version.linux/amd64 1.5.0
  molt settings set activation-upgrade.linux true
  molt settings set hooks.on-run-end "/usr/local/bin/notify-run"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.SetSetting(cmd.Context(), args[0], args[1])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s = %s\n", s.Key, s.Value)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the new setting as JSON")
	return cmd
}

func newSettingsResetCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reset KEY",
		Short: "Put one setting back to its default (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.ResetSetting(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s = %s (default)\n", s.Key, s.Value)
			return err
		},
	}
}
