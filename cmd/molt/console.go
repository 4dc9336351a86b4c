package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
)

func newConsoleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "The web console: sign-in links",
		Long: `molt serve serves a web console at https://HOST:PORT/console/ on its own
listener. A browser signs in with an API token, or with a one-time link
made here, and acts with that token's role: a viewer's console shows no
action, and the server refuses one anyway. Revoking the token ends its
sessions; a session ends by itself after the sessions.lifetime setting
(12h by default) or when its user signs out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newConsoleLinkCmd(cf))
	return cmd
}

func newConsoleLinkCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "link [--json]",
		Short: "Print a one-time link that signs in to the console as this token (admin)",
		Long: `Print a link to the web console that signs in once, within 10 minutes, as
the token this command uses, with its role. Whoever opens it first is
signed in: hand it over as you would the token. The code is in the URL's
fragment (after #), which browsers send to no server.`,
		Example: `  molt console link
  molt console link --json | jq -r .url`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			l, err := c.CreateSigninLink(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), l)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "one-time sign-in link, valid until %s (%d minutes); whoever opens it first signs in with this token's role:\n",
				local(l.Expires).Format("15:04:05"), time.Until(l.Expires).Round(time.Minute)/time.Minute)
			_, err = fmt.Fprintln(cmd.OutOrStdout(), clean(l.URL))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the link, its code and expiry as JSON")
	return cmd
}
