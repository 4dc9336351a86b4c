package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/protocol"
)

func newAgentsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List, show and revoke enrolled agents",
		Long: `Every enrolled agent has a connection status and an upgrade status.

Connection: online (checking in), offline (missed its check-ins), inactive
(not seen for the server's inactivity period; hidden unless --inactive).

Upgrade: up_to_date; upgrade_recommended (its platform's target version is
another one); upgrade_required (its protocol version is too old for this
server); manual_upgrade_required (not supervised, or too old to upgrade
itself: upgrade it by hand with molt-agent upgrade --pack).`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newAgentsListCmd(cf), newAgentsShowCmd(cf), newAgentsRevokeCmd(cf))
	return cmd
}

func newAgentsListCmd(cf *connFlags) *cobra.Command {
	var f apiclient.AgentFilter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--platform P] [--version V] [--inactive]",
		Short: "List agents",
		Example: `  molt agents list --platform linux/amd64 --version 1.4.0
  molt agents list --json | jq -r '.[] | select(.upgrade_status != "up_to_date") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) ([]protocol.Agent, error) {
				return c.Agents(ctx, f)
			}, printAgents)
		},
	}
	cmd.Flags().StringVar(&f.Platform, "platform", "", "only agents of this platform (goos/goarch)")
	cmd.Flags().StringVar(&f.Version, "version", "", "only agents running this version")
	cmd.Flags().BoolVar(&f.Inactive, "inactive", false, "include inactive agents")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

func printAgents(w io.Writer, as []protocol.Agent, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "NAME", "PLATFORM", "VERSION", "STATUS", "UPGRADE", "SUPERVISED", "WORKLOADS", "LAST SEEN")
	for _, a := range as {
		sup := "no"
		if a.Supervised {
			sup = "yes"
		}
		status := a.Status
		if a.Revoked {
			status = "revoked"
		} else if a.Busy || len(a.Holds) > 0 {
			status += " (busy)"
		}
		row(tw, clean(a.ID), dash(clean(a.Name)), clean(a.Platform), clean(a.Version), status, upgradeStatus(a), sup, workloadHealth(a.Workloads), fmtTime(a.LastSeen, now))
	}
	return tw.Flush()
}

// workloadHealth is the WORKLOADS column, the workloads' health at a
// glance: "-" without workloads, "2 ready" when all are ready, else how
// many are and the others by name, "1/2 ready, exporter crashed" (two
// named at most, then "+3 more").
func workloadHealth(ws []protocol.Workload) string {
	if len(ws) == 0 {
		return "-"
	}
	ready := 0
	var others []string
	for _, w := range ws {
		if w.State == protocol.WorkloadReady {
			ready++
			continue
		}
		if len(others) < 2 {
			others = append(others, clean(w.Name)+" "+clean(w.State))
		}
	}
	if ready == len(ws) {
		return fmt.Sprintf("%d ready", ready)
	}
	s := fmt.Sprintf("%d/%d ready, %s", ready, len(ws), strings.Join(others, ", "))
	if n := len(ws) - ready - len(others); n > 0 {
		s += fmt.Sprintf(", +%d more", n)
	}
	return s
}

// upgradeStatus shows the upgrade status with the version it points to.
func upgradeStatus(a protocol.Agent) string {
	s := dash(a.UpgradeStatus)
	if a.UpgradeStatus == protocol.UpgradeRecommended && a.TargetVersion != "" {
		s += " (" + a.TargetVersion + ")"
	}
	return s
}

func newAgentsShowCmd(cf *connFlags) *cobra.Command {
	return newShowCmd(cf, "show ID", "Show one agent: versions, status, labels, holds, last trial result, workloads", (*apiclient.Client).Agent, printAgent)
}

func printAgent(w io.Writer, a protocol.Agent, now time.Time) error {
	tw := newTable(w)
	kv := func(k string, v any) { row(tw, k+":", v) }
	kv("ID", a.ID)
	kv("Name", dash(clean(a.Name)))
	kv("Hostname", dash(clean(a.Hostname)))
	kv("Platform", clean(a.Platform+" ("+a.OSFamily+")"))
	kv("Version", clean(a.Version))
	kv("Status", a.Status)
	kv("Upgrade", upgradeStatus(a))
	sup := "no"
	if a.Supervised {
		sup = "yes, supervisor " + dash(clean(a.SupervisorVersion))
	}
	kv("Supervised", sup)
	kv("Protocol", a.ProtocolVersion)
	kv("Labels", dash(clean(fmtLabels(a.Labels))))
	kv("Cluster", dash(clean(a.Cluster)))
	kv("Busy", fmt.Sprint(a.Busy))
	if len(a.Holds) > 0 {
		kv("Holds", clean(strings.Join(a.Holds, "; ")))
	}
	if a.PendingReboot {
		kv("Pending reboot", "yes")
	}
	if a.FreeDiskBytes > 0 {
		kv("Free disk", fmtBytes(a.FreeDiskBytes))
	}
	if a.Floor != "" {
		kv("Floor", clean(a.Floor))
	}
	kv("Enrolled", fmtTime(a.Enrolled, now))
	kv("Last seen", fmtTime(a.LastSeen, now))
	if a.Revoked {
		kv("Revoked", "yes")
	}
	if r := a.LastResult; r != nil {
		s := clean(r.Outcome + " " + r.Version)
		if r.Previous != "" {
			s += " (from " + clean(r.Previous) + ")"
		}
		s += " at " + fmtTime(r.At, now)
		kv("Last trial", s)
		if r.Workload != "" {
			kv("  workload", clean(r.Workload))
		}
		if r.Reason != "" {
			kv("  reason", clean(r.Reason))
		}
		if r.Logs != "" {
			kv("  logs", clean(r.Logs))
		}
		if r.WorkloadLogs != "" {
			kv("  workload logs", clean(r.WorkloadLogs))
		}
		if s := r.Supervisor; s != nil {
			v := fmt.Sprintf("%s -> %s upgraded=%t", s.From, s.To, s.Upgraded)
			if s.Reason != "" {
				v += ": " + s.Reason
			}
			kv("  supervisor", clean(v))
		}
	}
	// One section per workload, as the agent reported it.
	for _, wl := range a.Workloads {
		kv("Workload", clean(wl.Name))
		kv("  version", clean(wl.Version))
		kv("  state", clean(wl.State)+" since "+fmtTime(wl.Since, now))
		kv("  restarts", wl.Restarts)
		if wl.LastExit != "" {
			kv("  last exit", clean(wl.LastExit))
		}
		if wl.Reason != "" {
			kv("  reason", clean(wl.Reason))
		}
	}
	if len(a.Workloads) == 0 {
		kv("Workloads", "-")
	}
	return tw.Flush()
}

func fmtLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// fmtBytes shows a byte count for people.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func newAgentsRevokeCmd(cf *connFlags) *cobra.Command {
	return newRevokeCmd(cf, "agent", "Revoke an agent's credential (it must enroll again to come back)", (*apiclient.Client).RevokeAgent)
}
