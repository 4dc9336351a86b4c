package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
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
	var o agentsListOpts
	cmd := &cobra.Command{
		Use:   "list [--search TEXT] [--platform P] [--version V] [--status S] [--upgrade-status U] [--label K=V] [--sort KEY] [--limit N --offset N] [--inactive]",
		Short: "List agents, filtered, sorted and paged by the server",
		Long: `List the agents that match every filter given, sorted by name (or --sort).

Filters: --search is a case-insensitive substring of the name, hostname, id
or a label value; --status is online, offline, inactive, revoked or busy
(agents that report themselves busy); --upgrade-status is up_to_date,
upgrade_recommended, upgrade_required or manual_upgrade_required; --label
K=V repeats and all must match. Inactive agents are left out unless
--inactive or --status inactive.

Without --limit every match is listed. With --limit N (1 to 1000) one page
is, from --offset; the total of matches is printed on stderr, so the table
on stdout stays the rows alone. --json prints the page as a JSON array,
as without paging.`,
		Example: `  molt agents list --platform linux/amd64 --version 1.4.0
  molt agents list --search web --status offline
  molt agents list --label env=prod --upgrade-status upgrade_recommended --sort -last_seen
  molt agents list --sort version --limit 50 --offset 100
  molt agents list --json | jq -r '.[] | select(.upgrade_status != "up_to_date") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := o.query()
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			page, err := c.AgentPage(cmd.Context(), q)
			if err != nil {
				return apiErr(err)
			}
			if o.asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), nonNil(page.Agents))
			}
			if err := printAgents(cmd.OutOrStdout(), page.Agents, time.Now()); err != nil {
				return err
			}
			if q.Limit > 0 || q.Offset > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), pageText(q, len(page.Agents), page.Total))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.f.Q, "search", "", "only agents whose name, hostname, id or a label value contains this text (case ignored)")
	f.StringVar(&o.f.Platform, "platform", "", "only agents of this platform (goos/goarch)")
	f.StringVar(&o.f.OSFamily, "os-family", "", "only agents of this OS family (linux, windows, unix)")
	f.StringVar(&o.f.Version, "version", "", "only agents running this version")
	f.StringVar(&o.f.Cluster, "cluster", "", "only agents of this cluster")
	f.StringVar(&o.f.Status, "status", "", "only agents with this status: "+strings.Join(protocol.AgentFilterStatuses, ", "))
	f.StringVar(&o.f.UpgradeStatus, "upgrade-status", "", "only agents with this upgrade status: "+strings.Join(protocol.UpgradeStatuses, ", "))
	f.StringArrayVar(&o.labels, "label", nil, "K=V: only agents with this label (repeatable; all must match)")
	f.BoolVar(&o.f.Inactive, "inactive", false, "include inactive agents")
	f.StringVar(&o.sort, "sort", "name", "sort by "+strings.Join(protocol.AgentSortKeys, ", ")+"; a leading - sorts descending (-last_seen)")
	f.IntVar(&o.limit, "limit", 0, fmt.Sprintf("list at most this many agents, 1 to %d (0: all)", protocol.MaxAgentPage))
	f.IntVar(&o.offset, "offset", 0, "skip this many matches first (with --limit: the page)")
	f.BoolVar(&o.asJSON, "json", false, "print as a JSON array")
	return cmd
}

// agentsListOpts are the flags of molt agents list.
type agentsListOpts struct {
	f             protocol.AgentFilter
	labels        []string
	sort          string
	limit, offset int
	asJSON        bool
}

// query checks the flags (a usage error names the flag) and builds the
// server's query.
func (o agentsListOpts) query() (apiclient.AgentQuery, error) {
	q := apiclient.AgentQuery{AgentFilter: o.f, Sort: o.sort, Limit: o.limit, Offset: o.offset}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return q, cli.Usage("--label: %q is not KEY=VALUE (e.g. --label env=prod)", l)
		}
		if q.Labels == nil {
			q.Labels = map[string]string{}
		}
		q.Labels[k] = v
	}
	if s := o.f.Status; s != "" && !slices.Contains(protocol.AgentFilterStatuses, s) {
		return q, cli.Usage("--status %q: give one of %s", s, strings.Join(protocol.AgentFilterStatuses, ", "))
	}
	if s := o.f.UpgradeStatus; s != "" && !slices.Contains(protocol.UpgradeStatuses, s) {
		return q, cli.Usage("--upgrade-status %q: give one of %s", s, strings.Join(protocol.UpgradeStatuses, ", "))
	}
	if !slices.Contains(protocol.AgentSortKeys, strings.TrimPrefix(o.sort, "-")) {
		return q, cli.Usage("--sort %q: give one of %s, with a leading - to sort descending", o.sort, strings.Join(protocol.AgentSortKeys, ", "))
	}
	if o.limit < 0 || o.limit > protocol.MaxAgentPage {
		return q, cli.Usage("--limit %d: give 1 to %d (0: every agent)", o.limit, protocol.MaxAgentPage)
	}
	if o.offset < 0 {
		return q, cli.Usage("--offset %d: give 0 or more", o.offset)
	}
	return q, nil
}

// pageText says which matches a page shows ("agents 51-100 of 1234").
func pageText(q apiclient.AgentQuery, n, total int) string {
	if n == 0 {
		return fmt.Sprintf("no agents from offset %d: %d match", q.Offset, total)
	}
	s := fmt.Sprintf("agents %d-%d of %d", q.Offset+1, q.Offset+n, total)
	if next := q.Offset + n; next < total {
		s += fmt.Sprintf(" (next page: --offset %d)", next)
	}
	return s
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
