package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/sleep"
	"github.com/moltfleet/molt/protocol"
)

// eventsPage is how many events one request asks for.
const eventsPage = 500

func newEventsCmd() *cobra.Command {
	var follow, asJSON bool
	var since, agent, run string
	var ids []string
	cmd := &cobra.Command{
		Use:   "events [--follow] [--since T] [--id N,...] [--agent A] [--run r-N] [--json]",
		Short: "Print the event log, oldest first; --follow waits for new events",
		Long: `Every step of enrollment, runs and deployments is an event with a stable
numeric id (264 upgrade requested, 277 upgrade on activation skipped,
706 upgraded, 707 upgrade failed, ...; see docs/api.md for the catalogue).

--since takes a time (2026-01-02T15:04:05Z, "2026-01-02 15:04:05" in local
time, 2026-01-02), a duration back from now (15m, 2h), or "all"; the
default is 24h. --id, --agent and --run keep only the events of those ids,
that agent (id or name) and that run; the server selects them. --json
prints one JSON object per line, also with --follow.`,
		Example: `  molt events --since 1h
  molt events --follow --id 707,708
  molt events --agent web-1 --since all
  molt events --follow --json | jq -c 'select(.id == 707)'`,
		Args: cobra.NoArgs,
	}
	cf := addConnFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var from time.Time
		if since != "all" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return cli.Usage("--since: %v", err)
			}
			from = t
		}
		q := apiclient.EventQuery{Since: from, Agent: agent, Run: run}
		for _, v := range ids {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return cli.Usage("--id: %q is not an event id (a number like 264; docs/events.md lists them)", v)
			}
			q.IDs = append(q.IDs, n)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		p := eventPrinter{w: cmd.OutOrStdout(), json: asJSON}
		return apiErr(followEvents(cmd.Context(), c, q, follow, p.print, cmd.ErrOrStderr()))
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep waiting for new events (until interrupted)")
	cmd.Flags().StringVar(&since, "since", "24h", "start at this time or this long ago, or \"all\"")
	cmd.Flags().StringSliceVar(&ids, "id", nil, "only these event ids (comma-separated or repeated), e.g. 707,708")
	cmd.Flags().StringVar(&agent, "agent", "", "only the events of this agent (id or name)")
	cmd.Flags().StringVar(&run, "run", "", "only the events of this run (r-N)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}

// eventsAPI is what followEvents needs of the client.
type eventsAPI interface {
	Events(ctx context.Context, q apiclient.EventQuery) (protocol.Events, error)
}

// followEvents pages through the events q selects from q.Since and, when
// follow is set, keeps asking for more. While following, an unreachable
// server is waited for (a restart must not end an operator's follow).
func followEvents(ctx context.Context, c eventsAPI, q apiclient.EventQuery, follow bool, emit func(protocol.Event) error, warn io.Writer) error {
	q.Limit = eventsPage
	down := false
	backoff := time.Second
	for {
		q.Follow = follow && q.After > 0
		start := time.Now()
		evs, err := c.Events(ctx, q)
		if err != nil {
			var ce *apiclient.ConnectError
			if !follow || !errors.As(err, &ce) || ctx.Err() != nil {
				return err
			}
			if !down {
				fmt.Fprintf(warn, "molt: %v; retrying\n", err)
				down = true
			}
			if err := sleep.For(ctx, backoff); err != nil {
				return nil
			}
			backoff = min(backoff*2, 15*time.Second)
			continue
		}
		if down {
			fmt.Fprintln(warn, "molt: server reachable again")
			down, backoff = false, time.Second
		}
		for _, e := range evs.Events {
			if err := emit(e); err != nil {
				return err
			}
		}
		if evs.Next > q.After {
			q.After = evs.Next
			q.Since = time.Time{}
		}
		if len(evs.Events) >= eventsPage {
			continue
		}
		if !follow {
			return nil
		}
		// A server that does not hold the request must not be hammered.
		if len(evs.Events) == 0 && time.Since(start) < time.Second {
			if err := sleep.For(ctx, time.Second); err != nil {
				return nil
			}
		}
	}
}

type eventPrinter struct {
	w    io.Writer
	json bool
}

func (p eventPrinter) print(e protocol.Event) error {
	if p.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(p.w, fmtEvent(e))
	return err
}

// fmtEvent is one line of fixed columns, so a followed log stays aligned
// without buffering.
func fmtEvent(e protocol.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %4d %-28s", local(e.At).Format("2006-01-02 15:04:05"), e.ID, e.Name)
	if e.AgentID != "" {
		fmt.Fprintf(&b, " agent=%s", e.AgentID)
	}
	if e.RunID != "" {
		fmt.Fprintf(&b, " run=%s", e.RunID)
	}
	if e.DeploymentID != "" {
		fmt.Fprintf(&b, " deployment=%s", e.DeploymentID)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, e.Fields[k])
	}
	if e.Message != "" {
		b.WriteString("  " + oneLineText(e.Message, 300))
	}
	return b.String()
}
