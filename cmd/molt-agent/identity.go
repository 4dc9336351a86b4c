package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
)

func newResetIdentityCmd() *cobra.Command {
	var (
		dir   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "reset-identity",
		Short: "Remove the agent's identity before an image of this host is captured",
		Long: `Remove state/identity.json: the agent id, its credential and the machine
fingerprint it was made on. The next start makes a new identity and enrolls
again, so every host made from the image gets its own identity.

It refuses while an agent runs for this home, as uninstall does: the
running agent would keep the identity it has in memory and write it back
into the image. Stop the service first (molt-supervisor stop), or pass
--force to remove the file anyway.`,
		Example: `  molt-supervisor stop --home /opt/molt
  molt-agent reset-identity --home /opt/molt
  # now capture the image`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := home.New(dir)
			out := cmd.OutOrStdout()
			if d, ok := agent.RunningDaemon(h); ok {
				if !force {
					return fmt.Errorf("an agent runs for this home (pid %d); %s, or pass --force", d.Pid, howToStop(d, h))
				}
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
	cmd.Flags().BoolVar(&force, "force", false, "remove the identity even while an agent runs for this home")
	return cmd
}

// howToStop tells how to stop the agent d: through its supervisor's
// service when it is supervised, else by ending the process itself.
func howToStop(d agent.DaemonInfo, h home.Home) string {
	if d.Supervised {
		return "stop it first (molt-supervisor stop --home " + h.Dir + ")"
	}
	return fmt.Sprintf("it runs unsupervised: stop it first (kill %d)", d.Pid)
}
