package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

var platformArgRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+$`)

// checkPlatforms refuses a --platform that is not GOOS/GOARCH before
// the server is asked.
func checkPlatforms(ps []string) error {
	for _, p := range ps {
		if !platformArgRe.MatchString(p) {
			return cli.Usage("--platform %q is not GOOS/GOARCH, like linux/amd64", p)
		}
	}
	return nil
}

func newReleaseQuarantineCmd(cf *connFlags) *cobra.Command {
	var (
		platforms []string
		reason    string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "quarantine VERSION",
		Short: "Keep a release from platforms: no upgrade on activation goes to it, it is not recommended",
		Long: `Quarantine a release for some of its platforms (all of them without
--platform). On a platform it is quarantined for, upgrade on activation
passes it over (the version policy "latest" resolves to the newest release
not quarantined; a pin to it gives no target) and agents are not shown
upgrade_recommended towards it. The server quarantines a release by itself
when it rolled back on releases.quarantine-after agents of a platform
(default 2; 0 turns this off) or on a canary of a run.

Platforms already quarantined keep their reason and time. Lift it with
"molt release unquarantine". Needs the operator role.`,
		Example: `  molt release quarantine 1.5.0 --platform windows/amd64 --reason "crashes on Server 2016"
  molt release quarantine 1.5.0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPlatforms(platforms); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.QuarantineRelease(cmd.Context(), args[0], protocol.QuarantineRequest{Platforms: platforms, Reason: reason})
			if err != nil {
				return apiErr(fmt.Errorf("quarantine %s: %w", args[0], err))
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			return printQuarantineResult(cmd.OutOrStdout(), r, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&platforms, "platform", nil, "quarantine it for `GOOS/GOARCH` only (repeatable; default: all its platforms)")
	f.StringVar(&reason, "reason", "", "why, recorded with the quarantine and in event 1007 (default \"quarantined by an operator\")")
	f.BoolVar(&asJSON, "json", false, "print the release with its quarantines as JSON")
	return cmd
}

func newReleaseUnquarantineCmd(cf *connFlags) *cobra.Command {
	var (
		platforms []string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "unquarantine VERSION",
		Short: "Lift a release's quarantine on platforms (all of them without --platform)",
		Long: `Lift a release's quarantine: upgrade on activation and the upgrade status
consider it again on those platforms. Rollbacks count towards
releases.quarantine-after afresh from now. Needs the operator role.`,
		Example: `  molt release unquarantine 1.5.0 --platform linux/amd64`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPlatforms(platforms); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.UnquarantineRelease(cmd.Context(), args[0], platforms)
			if err != nil {
				return apiErr(fmt.Errorf("unquarantine %s: %w", args[0], err))
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			return printQuarantineResult(cmd.OutOrStdout(), r, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&platforms, "platform", nil, "lift it for `GOOS/GOARCH` only (repeatable; default: every platform)")
	f.BoolVar(&asJSON, "json", false, "print the release with its quarantines as JSON")
	return cmd
}

// printQuarantineResult says where release r is quarantined now.
func printQuarantineResult(w io.Writer, r protocol.Release, now time.Time) error {
	if len(r.Quarantined) == 0 {
		_, err := fmt.Fprintf(w, "release %s is not quarantined for any platform\n", clean(r.Version))
		return err
	}
	return printQuarantines(w, []protocol.Release{r}, now)
}

// printQuarantines lists the quarantines of rs as a table, after a blank
// line; nothing when there are none.
func printQuarantines(w io.Writer, rs []protocol.Release, now time.Time) error {
	n := 0
	for _, r := range rs {
		n += len(r.Quarantined)
	}
	if n == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	tw := newTable(w)
	row(tw, "QUARANTINED", "PLATFORM", "SINCE", "BY", "REASON")
	for _, r := range rs {
		for _, q := range r.Quarantined {
			by := "operator"
			if q.Automatic {
				by = "rollbacks"
			}
			row(tw, r.Version, q.Platform, fmtTime(q.At, now), by, strings.TrimSpace(q.Reason))
		}
	}
	return tw.Flush()
}
