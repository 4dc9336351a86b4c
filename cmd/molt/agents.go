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
		Short: "List, show, revoke and allow enrolled agents",
		Long: `Every enrolled agent has a status and an upgrade status.

Status: online (checking in), offline (missed its check-ins), inactive
(not seen for the server's inactivity period; hidden unless --inactive),
revoked (its credential was revoked: it no longer connects, and its host
may not enroll again until "molt agents allow ID").

Upgrade: up_to_date; upgrade_recommended (its platform's target version is
another one); upgrade_required (its protocol version is too old for this
server); manual_upgrade_required (not supervised, or too old to upgrade
itself: upgrade it by hand with molt-agent upgrade --pack).`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newAgentsListCmd(cf), newAgentsShowCmd(cf), newAgentsRevokeCmd(cf), newAgentsAllowCmd(cf))
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
		status := agentStatus(a)
		if !a.Revoked && (a.Busy || len(a.Holds) > 0) {
			status += " (busy)"
		}
		row(tw, clean(a.ID), dash(clean(a.Name)), clean(a.Platform), clean(a.Version), status, upgradeStatus(a), sup, workloadHealth(a.Workloads), fmtTime(a.LastSeen, now))
	}
	return tw.Flush()
}

// agentStatus is the status shown for an agent, in agents list and
// agents show alike: revoked wins over the connection status, which an
// older server still sends for a revoked agent.
func agentStatus(a protocol.Agent) string {
	if a.Revoked {
		return protocol.AgentRevoked
	}
	return clean(a.Status)
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
	kv("Status", agentStatus(a))
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
		host := "may enroll again"
		if a.HostRefused {
			host = "refused at enrollment until: molt agents allow " + clean(a.ID)
		}
		kv("Revoked", "yes; its host "+host)
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
	cmd := newRevokeCmd(cf, "agent", "Revoke an agent's credential and keep its host out", (*apiclient.Client).RevokeAgent)
	cmd.Long = `Revoke an agent's credential: its check-ins are refused from now on, and
its open deployment is cancelled.

Its host (its machine fingerprint) is refused at enrollment too, even with
a valid enrollment token, until an admin runs "molt agents allow ID". A
host to be reinstalled or given back is allowed again; a host that is
gone stays refused. Needs the admin role.`
	cmd.Example = `  molt agents revoke a-3f2c9e0b1d4a5f60
  molt agents allow a-3f2c9e0b1d4a5f60    # later: let the host enroll again`
	return cmd
}

func newAgentsAllowCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "allow ID",
		Short: "Let the host of a revoked agent enroll again",
		Long: `A revoked agent's host (its machine fingerprint) is refused at enrollment
(event 908 host_refused). "allow" lifts that refusal: the host enrolls
again, as a new agent, with an enrollment token as any new host. The
revoked agent stays revoked. Allowing a host that is not refused changes
nothing; an agent that is not revoked is an error. Needs the admin role.`,
		Example: `  molt agents allow a-3f2c9e0b1d4a5f60`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fetchAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) (protocol.Agent, error) {
				return c.AllowAgent(ctx, args[0])
			}, func(w io.Writer, a protocol.Agent, _ time.Time) error {
				_, err := fmt.Fprintf(w, "the host of revoked agent %s (%s) may enroll again\n", clean(a.ID), dash(clean(a.Name)))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the agent as JSON")
	return cmd
}
