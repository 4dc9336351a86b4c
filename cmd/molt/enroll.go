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

// Bounds the server also enforces; checked here for a clearer message.
const (
	maxEnrollExpiry = 365 * 24 * time.Hour
	maxEnrollUses   = 1_000_000
)

func newEnrollTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enroll-token",
		Short: "Manage enrollment tokens, which let new agents enroll (admin)",
		Long: `An agent enrolls once, with the enrollment token from its agent.yaml
(enrollment_token:), and gets its own credential in return. An enrollment
token expires and allows a limited number of enrollments; its secret is
shown once, at creation.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newEnrollTokenCreateCmd(cf), newEnrollTokenListCmd(cf), newEnrollTokenRevokeCmd(cf))
	return cmd
}

func newEnrollTokenCreateCmd(cf *connFlags) *cobra.Command {
	var expires time.Duration
	var uses int
	var name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create [--expires 24h] [--uses N] [--name NAME]",
		Short: "Create an enrollment token and print its secret once",
		Example: `  # a token for a batch of 500 hosts, valid for a week
  molt enroll-token create --expires 168h --uses 500 --name rollout-eu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires < time.Minute || expires > maxEnrollExpiry {
				return cli.Usage("--expires: %s is not between 1m and %s", expires, maxEnrollExpiry)
			}
			if uses < 1 || uses > maxEnrollUses {
				return cli.Usage("--uses: %d is not between 1 and %d", uses, maxEnrollUses)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.CreateEnrollToken(cmd.Context(), protocol.EnrollTokenRequest{
				Name: name, ExpiresIn: int64(expires / time.Second), Uses: uses,
			})
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created enrollment token %s: %d use(s), expires %s; put the secret below in agent.yaml as enrollment_token (it is not shown again)\n",
				t.Token.ID, t.Token.Uses, local(t.Token.Expires).Format("2006-01-02 15:04:05"))
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			return err
		},
	}
	cmd.Flags().DurationVar(&expires, "expires", 24*time.Hour, "how long the token is valid (1m to 8760h)")
	cmd.Flags().IntVar(&uses, "uses", 1, "how many agents may enroll with it")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the token and its secret as JSON")
	return cmd
}

func newEnrollTokenListCmd(cf *connFlags) *cobra.Command {
	return newListCmd(cf, "List enrollment tokens (never their secrets)", (*apiclient.Client).EnrollTokens, printEnrollTokens)
}

func printEnrollTokens(w io.Writer, ts []protocol.EnrollToken, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "NAME", "USED", "CREATED", "EXPIRES", "STATE")
	for _, t := range ts {
		state := "active"
		switch {
		case t.Revoked:
			state = "revoked"
		case !t.Expires.IsZero() && now.After(t.Expires):
			state = "expired"
		case t.Used >= t.Uses:
			state = "used up"
		}
		row(tw, t.ID, dash(t.Name), fmt.Sprintf("%d/%d", t.Used, t.Uses), fmtTime(t.Created, now),
			local(t.Expires).Format("2006-01-02 15:04:05"), state)
	}
	return tw.Flush()
}

func newEnrollTokenRevokeCmd(cf *connFlags) *cobra.Command {
	return newRevokeCmd(cf, "enrollment token", "Revoke an enrollment token (enrolled agents keep their credentials)", (*apiclient.Client).RevokeEnrollToken)
}
