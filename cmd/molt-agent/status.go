package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
)

// statusReport is what "molt-agent status --json" prints.
type statusReport struct {
	Home       string                `json:"home"`
	Config     *configSummary        `json:"config,omitempty"`
	Identity   *identityStatus       `json:"identity,omitempty"`
	Active     *home.Active          `json:"active,omitempty"`
	Versions   []versionStatus       `json:"versions"`
	LastResult *home.Result          `json:"last_result,omitempty"`
	Upgrade    *updater.UpgradeState `json:"upgrade,omitempty"`
	Floor      string                `json:"floor,omitempty"`
	Agent      *agentProcess         `json:"agent,omitempty"`
	Supervisor *supervisorProcess    `json:"supervisor,omitempty"`
	Supervised bool                  `json:"supervised"`
	Busy       bool                  `json:"busy"`
	Holds      []agent.Hold          `json:"holds"`
	// Workloads are what the supervisor runs (state/workloads.json).
	Workloads []workloadStatus `json:"workloads,omitempty"`
	// DataDir is data/, the workloads' own state across versions (set
	// when it exists).
	DataDir  string   `json:"data_dir,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// workloadStatus is one workload as the supervisor last recorded it.
type workloadStatus struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	State    string    `json:"state"`
	Pid      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
}

// configSummary is what of agent.yaml (and the environment) matters to an
// operator looking at a host.
type configSummary struct {
	Server      string   `json:"server,omitempty"`
	Name        string   `json:"name,omitempty"`
	Cluster     string   `json:"cluster,omitempty"`
	Labels      []string `json:"labels,omitempty"`
	TrustedKeys int      `json:"trusted_keys"`
}

type identityStatus struct {
	ID          string    `json:"id"`
	Enrolled    bool      `json:"enrolled"`
	Server      string    `json:"server,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	// ThisMachine is false when the identity was made on another machine
	// (a cloned image): the next start makes a new one.
	ThisMachine bool `json:"this_machine"`
}

type versionStatus struct {
	Version string `json:"version"`
	Valid   bool   `json:"valid"`
	Role    string `json:"role,omitempty"` // current, previous, trial
}

type agentProcess struct {
	agent.DaemonInfo
	Running bool `json:"running"`
}

// supervisorProcess is read from state/agent.json, which the supervisor
// writes for the agent it runs.
type supervisorProcess struct {
	Pid      int    `json:"supervisor_pid"`
	AgentPid int    `json:"pid"`
	Version  string `json:"version"`
	Running  bool   `json:"running"`
}

func newStatusCmd() *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's identity, versions, last upgrade, holds, workloads and supervision",
		Long: `Show what the home holds and what runs: the identity (id, enrolled or not),
the current, previous and trial versions, every installed version and
whether it is complete (.valid), the outcome of the last trial
(state/result.json), the upgrade in flight (state/upgrade.json), whether an
agent and a supervisor run for this home, the active holds, the workloads
the supervisor runs (state/workloads.json: version, state, pid, restarts,
last exit and why) and the workloads' data directory.

It only reads; it works while the agent runs and when nothing runs. It
exits 1 when the home does not exist (a mistyped --home).`,
		Example: `  molt-agent status
  molt-agent status --home /srv/molt-b --json | jq .active.current`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := home.New(dir)
			if err := checkHomeDir(h); err != nil {
				return err
			}
			r := collectStatus(h)
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			printStatus(cmd.OutOrStdout(), r, time.Local)
			return nil
		},
	}
	homeFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// checkHomeDir fails when the home is not a directory: a status of a
// mistyped --home would otherwise look like a host with nothing installed.
func checkHomeDir(h home.Home) error {
	fi, err := os.Stat(h.Dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no agent home at %s: check --home or $MOLT_HOME", h.Dir)
	case err != nil:
		return fmt.Errorf("home %s: %w", h.Dir, errors.Unwrap(err))
	case !fi.IsDir():
		return fmt.Errorf("home %s is not a directory: check --home or $MOLT_HOME", h.Dir)
	}
	return nil
}

func collectStatus(h home.Home) statusReport {
	r := statusReport{Home: h.Dir, Versions: []versionStatus{}, Holds: []agent.Hold{}}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	if _, err := os.Stat(h.Dir); err != nil {
		problem("home %s: %v", h.Dir, errors.Unwrap(err))
		return r
	}
	if c, err := loadHomeConfig(h, ""); err != nil {
		problem("%v", err)
	} else {
		r.Config = &configSummary{Server: c.Server, Name: c.Name, Cluster: c.Cluster,
			Labels: agent.SortedLabels(c.Labels), TrustedKeys: len(c.TrustedKeys)}
	}
	switch id, err := agent.ReadIdentity(h); {
	case err == nil:
		fp, ferr := agent.Fingerprint()
		r.Identity = &identityStatus{
			ID: id.ID, Enrolled: id.Enrolled(), Server: id.Server, Fingerprint: id.Fingerprint, Created: id.Created,
			ThisMachine: ferr != nil || fp == id.Fingerprint,
		}
	case !errors.Is(err, agent.ErrNoIdentity):
		problem("identity: %v", err)
	}
	a, err := h.ReadActive()
	switch {
	case err == nil:
		r.Active = &a
	case errors.Is(err, home.ErrNoActive):
		problem("nothing installed: no state/active.json (run molt-agent install)")
	default:
		problem("%v", err)
	}
	r.Versions = installedVersions(h, a)
	if res, ok, err := h.ReadResult(); err != nil {
		problem("%v", err)
	} else if ok {
		r.LastResult = &res
	}
	u := updater.New(updater.Options{Home: h})
	if st, err := u.State(); err != nil {
		problem("%v", err)
	} else if st.Phase != updater.PhaseNone {
		r.Upgrade = &st
	}
	if f, err := u.Floor(); err == nil {
		r.Floor = f
	}
	if info, running := agent.RunningDaemon(h); info.Pid != 0 {
		r.Agent = &agentProcess{DaemonInfo: info, Running: running}
		r.Supervised = running && info.Supervised
	}
	var sp supervisorProcess
	if b, err := readSmall(filepath.Join(h.StateDir(), "agent.json")); err == nil && json.Unmarshal(b, &sp) == nil && sp.Pid > 0 {
		sp.Running = platform.ProcessAlive(sp.Pid)
		r.Supervisor = &sp
		r.Supervised = r.Supervised || sp.Running
	}
	hs, err := agent.HoldsOf(h).List()
	if err != nil {
		problem("%v", err)
	}
	if hs != nil {
		r.Holds = hs
	}
	r.Busy = len(r.Holds) > 0
	if ws, err := h.ReadWorkloadState(); err != nil {
		problem("%v", err)
	} else {
		for _, w := range ws.Workloads {
			r.Workloads = append(r.Workloads, workloadStatus{Name: w.Name, Version: w.Version, State: w.State,
				Pid: w.Process.PID, Restarts: w.Restarts, LastExit: w.LastExit, Reason: w.Reason, Since: w.Since})
		}
	}
	if fi, err := os.Stat(h.DataRoot()); err == nil && fi.IsDir() {
		r.DataDir = h.DataRoot()
	}
	return r
}

func installedVersions(h home.Home, a home.Active) []versionStatus {
	out := []versionStatus{}
	ents, err := os.ReadDir(h.VersionsDir())
	if err != nil {
		return out
	}
	for _, e := range ents {
		v := e.Name()
		if !e.IsDir() || !pack.ValidVersion(v) {
			continue
		}
		vs := versionStatus{Version: v, Valid: h.IsValid(v)}
		switch {
		case a.Trial != nil && a.Trial.Version == v:
			vs.Role = "trial"
		case v == a.Current:
			vs.Role = "current"
		case v == a.Previous:
			vs.Role = "previous"
		}
		out = append(out, vs)
	}
	sort.Slice(out, func(i, j int) bool { return semver.Less(out[j].Version, out[i].Version) })
	return out
}

// readSmall reads a file of at most 1 MiB (agent.yaml's limit).
func readSmall(path string) ([]byte, error) {
	const limit = 1 << 20
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && len(b) > limit {
		err = fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, err
}

// printStatus renders r for a person, with times in loc.
func printStatus(w io.Writer, r statusReport, loc *time.Location) {
	ts := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05") }
	fmt.Fprintf(w, "home        %s\n", r.Home)
	if c := r.Config; c != nil {
		line := "local-only (no server)"
		if c.Server != "" {
			line = "server " + c.Server
		}
		if c.Cluster != "" {
			line += ", cluster " + c.Cluster
		}
		if len(c.Labels) > 0 {
			line += ", labels " + strings.Join(c.Labels, ",")
		}
		line += fmt.Sprintf(", %d trusted key(s)", c.TrustedKeys)
		fmt.Fprintf(w, "config      %s\n", line)
	}
	switch id := r.Identity; {
	case id == nil:
		fmt.Fprintf(w, "identity    none yet (made on the agent's first start)\n")
	case id.Enrolled:
		fmt.Fprintf(w, "identity    %s, enrolled with %s\n", id.ID, id.Server)
	default:
		fmt.Fprintf(w, "identity    %s, not enrolled\n", id.ID)
	}
	if id := r.Identity; id != nil && !id.ThisMachine {
		fmt.Fprintf(w, "            made on another machine: the next start makes a new identity\n")
	}
	if a := r.Active; a != nil {
		prev := a.Previous
		if prev == "" {
			prev = "none"
		}
		fmt.Fprintf(w, "current     %s (previous %s)\n", a.Current, prev)
		if t := a.Trial; t != nil {
			state := "switched " + ts(t.Switched) + ", not started yet"
			if !t.Started.IsZero() {
				state = fmt.Sprintf("started %s, ready %v, crashes %d", ts(t.Started), t.Ready, t.Crashes)
			}
			fmt.Fprintf(w, "trial       %s: %s\n", t.Version, state)
		}
	}
	if len(r.Versions) > 0 {
		var parts []string
		for _, v := range r.Versions {
			s := v.Version
			if !v.Valid {
				s += " (incomplete)"
			}
			if v.Role != "" {
				s += " [" + v.Role + "]"
			}
			parts = append(parts, s)
		}
		fmt.Fprintf(w, "installed   %s\n", strings.Join(parts, ", "))
	}
	if res := r.LastResult; res != nil {
		line := fmt.Sprintf("%s %s at %s", res.Version, strings.ReplaceAll(res.Outcome, "_", " "), ts(res.At))
		if res.Reason != "" {
			line += ": " + res.Reason
		}
		fmt.Fprintf(w, "last trial  %s\n", line)
		if res.Outcome == home.OutcomeRolledBack && res.Logs != "" {
			fmt.Fprintf(w, "            logs of the failed version: %s\n", res.Logs)
		}
		if res.Workload != "" {
			line := "            failed workload: " + res.Workload
			if res.WorkloadLogs != "" {
				line += ", its output: " + res.WorkloadLogs
			}
			fmt.Fprintln(w, line)
		}
		if s := res.Supervisor; s != nil {
			if s.Upgraded {
				fmt.Fprintf(w, "supervisor  upgraded %s -> %s\n", s.From, s.To)
			} else {
				fmt.Fprintf(w, "supervisor  kept %s, not upgraded to %s: %s\n", s.From, s.To, s.Reason)
			}
		}
	}
	if u := r.Upgrade; u != nil && u.Phase != updater.PhaseDone && u.Phase != updater.PhaseAborted {
		line := fmt.Sprintf("order %s: %s, %s", u.Order, u.Version, u.Phase)
		var done, total int64
		for _, f := range u.Files {
			done, total = done+f.Done, total+f.Size
		}
		if u.Phase == updater.PhaseDownloading && total > 0 {
			line += fmt.Sprintf(" %d%%", done*100/total)
		}
		if u.Error != "" {
			line += ": " + u.Error
		}
		fmt.Fprintf(w, "upgrade     %s\n", line)
	}
	if r.Floor != "" {
		fmt.Fprintf(w, "floor       %s (no version below it is accepted)\n", r.Floor)
	}
	switch ag := r.Agent; {
	case ag != nil && ag.Running:
		fmt.Fprintf(w, "agent       running, pid %d, %s, since %s\n", ag.Pid, ag.Version, ts(ag.Started))
	default:
		fmt.Fprintf(w, "agent       not running\n")
	}
	switch sp := r.Supervisor; {
	case sp != nil && sp.Running:
		fmt.Fprintf(w, "supervised  yes, supervisor pid %d\n", sp.Pid)
	case r.Supervised:
		fmt.Fprintf(w, "supervised  yes\n")
	default:
		fmt.Fprintf(w, "supervised  no supervisor runs for this home\n")
	}
	if len(r.Holds) == 0 {
		fmt.Fprintf(w, "holds       none\n")
	}
	for i, h := range r.Holds {
		label := "holds      "
		if i > 0 {
			label = "           "
		}
		var until []string
		if h.Pid > 0 {
			until = append(until, fmt.Sprintf("while pid %d runs", h.Pid))
		}
		if !h.Expires.IsZero() {
			until = append(until, "until "+ts(h.Expires))
		}
		fmt.Fprintf(w, "%s %s %q %s\n", label, h.ID, h.Reason, strings.Join(until, ", "))
	}
	for i, wl := range r.Workloads {
		label := "workloads  "
		if i > 0 {
			label = "           "
		}
		line := fmt.Sprintf("%s %s %s", wl.Name, wl.Version, wl.State)
		if wl.Pid > 0 {
			line += fmt.Sprintf(", pid %d", wl.Pid)
		}
		line += fmt.Sprintf(", %d restart(s)", wl.Restarts)
		if !wl.Since.IsZero() {
			line += ", since " + ts(wl.Since)
		}
		if wl.LastExit != "" {
			line += ", last exit: " + wl.LastExit
		}
		fmt.Fprintf(w, "%s %s\n", label, line)
		if wl.Reason != "" {
			fmt.Fprintf(w, "              %s\n", wl.Reason)
		}
	}
	if r.DataDir != "" {
		fmt.Fprintf(w, "data        %s (the workloads' own state; kept across versions, removed only by uninstall --purge)\n", r.DataDir)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem     %s\n", p)
	}
}
