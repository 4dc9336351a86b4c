package main

import (
	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
)

func newResetIdentityCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "reset-identity",
		Short: "Remove the agent's identity before an image of this host is captured",
		Long: `Remove state/identity.json: the agent id, its credential and the machine
fingerprint it was made on. The next start makes a new identity and enrolls
again, so every host made from the image gets its own identity.

Stop the service first (molt-supervisor stop), or the running agent keeps
using the identity it has in memory until it restarts.`,
		Example: `  molt-supervisor stop --home /opt/molt
  molt-agent reset-identity --home /opt/molt
  # now capture the image`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := home.New(dir)
			out := cmd.OutOrStdout()
			if d, ok := agent.RunningDaemon(h); ok {
				say(cmd.ErrOrStderr(), "warning: an agent runs for this home (pid %d) and keeps its identity until it restarts; stop the service before capturing an image", d.Pid)
			}
			id, ok, err := agent.ResetIdentity(h)
			if err != nil {
				return err
			}
			if !ok {
				say(out, "no identity in %s: nothing to remove", h.Dir)
				return nil
			}
			state := "not enrolled"
			if id.Enrolled() {
				state = "enrolled with " + id.Server
			}
			if id.ID == "" {
				say(out, "removed %s (it was unreadable)", h.IdentityPath())
				return nil
			}
			say(out, "removed identity %s (%s) from %s; the next start makes a new one", id.ID, state, h.IdentityPath())
			return nil
		},
	}
	homeFlag(cmd, &dir)
	return cmd
}
