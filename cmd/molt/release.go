package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newReleaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Import, list and remove releases (packs) on the server",
		Long: `A release is a pack made by "molt pack build": one version's binaries for
one or more platforms and a signed manifest. The server verifies a pack
against its trusted keys on import; agents verify it again against their
own keys before they run it.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newReleaseImportCmd(cf), newReleaseListCmd(cf), newReleaseRemoveCmd(cf), newReleaseQuarantineCmd(cf), newReleaseUnquarantineCmd(cf))
	return cmd
}

func newReleaseImportCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "import PACK",
		Short:   "Upload a pack; the server verifies its signature and files",
		Example: `  molt release import molt-1.5.0.pack`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return cli.Exit(1, fmt.Errorf("pack: %w", err))
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return cli.Usage("pack %s is not a regular file", args[0])
			}
			if st.Size() > protocol.MaxPackSize {
				return cli.Exit(1, fmt.Errorf("pack %s is %s, over the server's limit of %s", args[0], fmtBytes(st.Size()), fmtBytes(protocol.MaxPackSize)))
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			// The pack goes up as it is: the server reads the zip molt pack
			// build writes and checks it all.
			r, err := c.ImportRelease(cmd.Context(), io.LimitReader(f, protocol.MaxPackSize))
			if err != nil {
				return apiErr(fmt.Errorf("import %s: %w", args[0], err))
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "imported %s for %s\n", r.Version, strings.Join(r.Platforms, ", "))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the release as JSON")
	return cmd
}

func newReleaseListCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			rs, err := c.Releases(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), nonNil(rs))
			}
			return printReleases(cmd.OutOrStdout(), rs, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

func printReleases(w io.Writer, rs []protocol.Release, now time.Time) error {
	tw := newTable(w)
	row(tw, "VERSION", "RELEASED", "FLOOR", "PLATFORMS", "SIZE", "IMPORTED")
	for _, r := range rs {
		row(tw, r.Version, fmtTime(r.Released, now), dash(r.Floor), strings.Join(r.Platforms, ","), fmtBytes(r.Size), fmtTime(r.Imported, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printQuarantines(w, rs, now)
}

func newReleaseRemoveCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove VERSION",
		Short: "Remove a release (refused while a run or a version pin needs it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.RemoveRelease(cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed release %s\n", args[0])
			return err
		},
	}
}
