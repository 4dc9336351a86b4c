package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
)

// fetchAndPrint is the body of the commands that read one thing from the
// server and show it: get asks for it (the context comes second so that a
// method expression such as (*apiclient.Client).Tokens fits); with --json
// it is printed as the server sent it, else print formats it for a person.
func fetchAndPrint[T any](cmd *cobra.Command, cf *connFlags, asJSON bool,
	get func(*apiclient.Client, context.Context) (T, error),
	print func(io.Writer, T, time.Time) error,
) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	v, err := get(c, cmd.Context())
	if err != nil {
		return apiErr(err)
	}
	if asJSON {
		return cli.PrintJSON(cmd.OutOrStdout(), v)
	}
	return print(cmd.OutOrStdout(), v, time.Now())
}

// listAndPrint is fetchAndPrint for listings, which print as a JSON
// array even when empty.
func listAndPrint[T any](cmd *cobra.Command, cf *connFlags, asJSON bool,
	get func(*apiclient.Client, context.Context) ([]T, error),
	print func(io.Writer, []T, time.Time) error,
) error {
	return fetchAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) ([]T, error) {
		vs, err := get(c, ctx)
		return nonNil(vs), err
	}, print)
}

// newShowCmd builds a command (use: "show ID") that shows one thing by
// its ID, which get fetches.
func newShowCmd[T any](cf *connFlags, use, short string,
	get func(*apiclient.Client, context.Context, string) (T, error),
	print func(io.Writer, T, time.Time) error,
) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fetchAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) (T, error) {
				return get(c, ctx, args[0])
			}, print)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// newListCmd builds a "list" command without filters.
func newListCmd[T any](cf *connFlags, short string,
	get func(*apiclient.Client, context.Context) ([]T, error),
	print func(io.Writer, []T, time.Time) error,
) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listAndPrint(cmd, cf, asJSON, get, print)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

// newRevokeCmd builds "revoke ID" for one kind of thing (what: "agent",
// "token", ...), which revoke revokes on the server.
func newRevokeCmd(cf *connFlags, what, short string, revoke func(*apiclient.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := revoke(c, cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "revoked %s %s\n", what, args[0])
			return err
		},
	}
}

// nonNil makes an empty listing print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
