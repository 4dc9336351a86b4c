package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newRunsReportCmd(cf *connFlags) *cobra.Command {
	var asJSON, withDeployments bool
	cmd := &cobra.Command{
		Use:   "report ID",
		Short: "The run report: how the run ended, why deployments failed, where the time went, every deployment",
		Long: `The run report: counts by state and by version moved, the failures grouped
by reason (reasons that differ only in numbers, durations, ids or hashes are
one group, with up to 5 example agents), each wave, how long each stage took
(p50, p95 and max over the deployments that went through it) and the 5
slowest deployments of each stage, then the table of every deployment.

Stages, from the server's steps: queue (created to requested), download
(downloading, else requested, to staged), stage (staged to restarting),
restart (restarting to watching), watch (watching to the end), total
(requested to the end).`,
		Example: `  molt runs report r-4
  molt runs report r-4 --deployments=false   # the summary only
  molt runs report r-4 --json | jq '.summary.failures'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			rep, err := c.RunReport(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				rep.Deployments = nonNil(rep.Deployments)
				return cli.PrintJSON(cmd.OutOrStdout(), rep)
			}
			return printRunReport(cmd.OutOrStdout(), rep, time.Now(), withDeployments)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the whole report as JSON: the run, the summary and every deployment")
	cmd.Flags().BoolVar(&withDeployments, "deployments", true, "end with the table of every deployment (--deployments=false: the summary only; --json always has them)")
	return cmd
}

// printRunReport is the text of molt runs report. Everything that came
// from agents (names, reasons) goes through row, so it is escaped.
func printRunReport(w io.Writer, rep protocol.RunReport, now time.Time, withDeployments bool) error {
	fmt.Fprintf(w, "Run %s: %s, target %s, %d deployment(s)\n", clean(rep.Run.ID), clean(rep.Run.Status), clean(fmtTarget(rep.Run)), len(rep.Deployments))
	if rep.Run.Text != "" {
		fmt.Fprintf(w, "  %s\n", clean(oneLineText(rep.Run.Text, 200)))
	}
	sum := rep.Summary
	// A server older than the summary sends none: the table is all there is.
	if len(sum.Stages) > 0 {
		if err := printRunSummary(w, sum, now); err != nil {
			return err
		}
	}
	if !withDeployments {
		return nil
	}
	fmt.Fprintln(w)
	return printDeployments(w, rep.Deployments, now, false)
}

func printRunSummary(w io.Writer, sum protocol.RunSummary, now time.Time) error {
	fmt.Fprintf(w, "  %s\n", clean(fmtCounts(sum.States)))

	fmt.Fprintln(w)
	tw := newTable(w)
	row(tw, "FROM", "TO", "DEPLOYMENTS", "SUCCEEDED")
	for _, v := range sum.Versions {
		row(tw, dash(v.From), v.To, v.Count, v.Succeeded)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(sum.Failures) == 0 {
		fmt.Fprintln(w, "No failures.")
	} else {
		tw = newTable(w)
		row(tw, "FAILED AS", "COUNT", "REASON", "EXAMPLES")
		for _, f := range sum.Failures {
			names := make([]string, len(f.Examples))
			for i, e := range f.Examples {
				names[i] = reportAgentName(e)
			}
			if more := f.Count - len(f.Examples); more > 0 {
				names = append(names, fmt.Sprintf("+%d more", more))
			}
			row(tw, f.State, f.Count, dash(oneLineText(f.Reason, 80)), strings.Join(names, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(sum.Health) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		row(tw, "HEALTH HALT", "SIGNAL", "REASON")
		for _, h := range sum.Health {
			row(tw, fmtTime(h.At, now), h.Signal, oneLineText(h.Reason, 160))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(sum.Waves) > 1 {
		fmt.Fprintln(w)
		tw = newTable(w)
		row(tw, "WAVE", "DEPLOYMENTS", "FAILURES", "STARTED", "ENDED", "STATES")
		for _, wv := range sum.Waves {
			row(tw, wv.Wave, wv.Total, wv.Failures, fmtTime(wv.Started, now), fmtTime(wv.Ended, now), fmtCounts(wv.States))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "STAGE", "COUNT", "P50", "P95", "MAX")
	for _, st := range sum.Stages {
		if st.Count == 0 {
			row(tw, st.Stage, 0, "-", "-", "-")
			continue
		}
		row(tw, st.Stage, st.Count, fmtSeconds(st.P50Seconds), fmtSeconds(st.P95Seconds), fmtSeconds(st.MaxSeconds))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "SLOWEST", "DEPLOYMENT", "AGENT", "TOOK")
	for _, st := range sum.Stages {
		for _, a := range st.Slowest {
			row(tw, st.Stage, a.DeploymentID, reportAgentName(a), fmtSeconds(a.Seconds))
		}
	}
	return tw.Flush()
}

// reportAgentName is an agent as the report names it: its name, else its id.
func reportAgentName(a protocol.ReportAgent) string {
	if a.AgentName != "" {
		return a.AgentName
	}
	return a.AgentID
}

// fmtSeconds shows a stage's duration as precisely as it is worth
// reading: milliseconds under a second, tenths under a minute, whole
// seconds above.
func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
