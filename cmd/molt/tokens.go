package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens (admin)",
		Long: `API tokens let operators and scripts use the server. Each has a role:

  viewer    read agents, releases, runs, history and events
  operator  also start, pause, resume and cancel runs and skip deployments
  admin     also settings, releases, tokens and enrollment tokens

The server stores only a hash: a token's secret is shown once, at creation.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newTokenCreateCmd(cf), newTokenListCmd(cf), newTokenRevokeCmd(cf))
	return cmd
}

func newTokenCreateCmd(cf *connFlags) *cobra.Command {
	var role, name, out string
	var asJSON, force bool
	cmd := &cobra.Command{
		Use:   "create --role viewer|operator|admin [--name NAME] [--out FILE [--force]]",
		Short: "Create an API token and print its secret once",
		Long: `Create an API token. Its secret is shown once: with --out it is written
to FILE, readable by its owner only (mode 0600), which is the way to keep
it; otherwise it is printed on stdout (and "> file" makes a file others
can read). --out refuses an existing file unless --force.`,
		Example: `  molt token create --role operator --name ci --out ci.token
  molt --token-file ci.token runs list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if protocol.RoleRank(role) == 0 {
				return cli.Usage("--role: %q is not one of viewer, operator, admin", role)
			}
			if force && !cmd.Flags().Changed("out") {
				return cli.Usage("--force: only with --out FILE")
			}
			if asJSON && cmd.Flags().Changed("out") {
				return cli.Usage("--json and --out: give one of them (--json prints the secret)")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			// The file is opened first: a path that cannot be written must
			// not cost a token whose secret nobody sees.
			var sf *secretFile
			if cmd.Flags().Changed("out") {
				if sf, err = openSecretFile(out, force); err != nil {
					return err
				}
				defer sf.abandon()
			}
			t, err := c.CreateToken(cmd.Context(), protocol.TokenRequest{Role: role, Name: name})
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), t)
			}
			if sf != nil {
				if err := sf.commit(t.Secret); err != nil {
					return cli.Exit(1, fmt.Errorf("token %s was created but its secret could not be written (revoke it: molt token revoke %s): %w", t.Token.ID, t.Token.ID, err))
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "created token %s (role %s); its secret is in %s (mode 0600)\n", t.Token.ID, t.Token.Role, out)
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created token %s (role %s); its secret follows and is not shown again (--out FILE keeps it in a file only you can read)\n", t.Token.ID, t.Token.Role)
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			return err
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	cmd.Flags().StringVar(&out, "out", "", "write the secret to this file, mode 0600, instead of stdout")
	cmd.Flags().BoolVar(&force, "force", false, "with --out: replace an existing file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the token and its secret as JSON")
	return cmd
}

func newTokenListCmd(cf *connFlags) *cobra.Command {
	return newListCmd(cf, "List API tokens (never their secrets)", (*apiclient.Client).Tokens, printTokens)
}

func printTokens(w io.Writer, ts []protocol.Token, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "NAME", "ROLE", "CREATED", "LAST USED", "STATE")
	for _, t := range ts {
		state := "active"
		if t.Revoked {
			state = "revoked"
		}
		row(tw, t.ID, dash(t.Name), t.Role, fmtTime(t.Created, now), fmtTime(t.LastUsed, now), state)
	}
	return tw.Flush()
}

func newTokenRevokeCmd(cf *connFlags) *cobra.Command {
	return newRevokeCmd(cf, "token", "Revoke an API token at once", (*apiclient.Client).RevokeToken)
}
