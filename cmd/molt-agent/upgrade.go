package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/internal/sleep"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
)

// claimTimeout is how long a running agent has to take a request.
const claimTimeout = 15 * time.Second

type upgradeOptions struct {
	dir, configPath, packPath string
	wait                      bool
	timeout                   time.Duration
	poll                      time.Duration
}

func newUpgradeCmd() *cobra.Command {
	o := upgradeOptions{poll: 200 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "upgrade --pack FILE",
		Short: "Upgrade (or revert) this agent from a signed pack file",
		Long: `Upgrade verifies the pack against the trusted_keys of the home's
agent.yaml, stages its version into versions/<version>/ and switches
state/active.json to it, in trial. The supervisor then starts the new
version and watches it: it is committed when it stays healthy through the
watch window, or rolled back to the current version.

When an agent runs for the home, the pack is handed to it (a request file
in state/requests/): it stages, waits until no hold is active, switches and
exits, and the supervisor restarts it into the new version. When no agent
runs, the switch is made here and the new version starts with the next
start of the agent.

A lower version than the current one is a revert: allowed down to the
highest floor this agent has seen. On any refusal (signature, platform,
floor, disk space, a trial in progress) nothing is changed.

Exit status: 0 switched (with --wait: committed), 1 refused or failed
(with --wait: rolled back).`,
		Example: `  molt-agent upgrade --pack molt-1.5.0.pack
  molt-agent upgrade --pack molt-1.5.0.pack --wait      # until committed or rolled back
  molt-agent upgrade --pack molt-1.4.0.pack             # a revert`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.packPath == "" {
				return cli.Usage("--pack FILE is required")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, cmd.OutOrStdout())
		},
	}
	homeFlag(cmd, &o.dir)
	f := cmd.Flags()
	f.StringVar(&o.packPath, "pack", "", "the signed pack file")
	f.StringVar(&o.configPath, "config", "", "agent.yaml whose trusted_keys verify the pack (default <home>/agent.yaml)")
	f.BoolVar(&o.wait, "wait", false, "after the switch, wait for the trial's outcome (committed or rolled back)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up waiting after this long (the upgrade itself goes on)")
	return cmd
}

func (o upgradeOptions) run(ctx context.Context, out io.Writer) error {
	h := home.New(o.dir)
	cfg, err := loadHomeConfig(h, o.configPath)
	if err != nil {
		return err
	}
	if len(cfg.TrustedKeys) == 0 {
		return fmt.Errorf("%s has no trusted_keys: a pack cannot be verified (add the release's public key)", h.ConfigPath())
	}
	keys, err := pack.LoadTrustedKeys(cfg.TrustedKeys)
	if err != nil {
		return fmt.Errorf("trusted_keys: %w", err)
	}
	packPath, err := filepath.Abs(o.packPath)
	if err != nil {
		return err
	}
	m, err := verifyPack(packPath, keys)
	if err != nil {
		return err
	}
	a, err := h.ReadActive()
	if errors.Is(err, home.ErrNoActive) {
		return fmt.Errorf("nothing is installed in %s; install first: molt-agent install --pack %s", h.Dir, o.packPath)
	}
	if err != nil {
		return err
	}
	switch {
	case a.Trial != nil:
		return fmt.Errorf("a trial of %s is in progress; try again once it is committed or rolled back (molt-agent status)", a.Trial.Version)
	case m.Version == a.Current:
		return fmt.Errorf("%s: %w", m.Version, updater.ErrAlreadyRunning)
	}
	kind := "upgrade"
	if semver.Less(m.Version, a.Current) {
		kind = "revert"
	}
	say(out, "pack %s: version %s, signature verified", filepath.Base(packPath), m.Version)
	say(out, "%s %s -> %s in %s", kind, a.Current, m.Version, h.Dir)
	id := newRequestID()
	start := time.Now()
	if d, ok := agent.RunningDaemon(h); ok {
		err = o.throughDaemon(ctx, out, h, d, agent.Request{
			ID: id, Version: m.Version, PackFile: packPath, Revert: kind == "revert",
			Requested: start.UTC(), Pid: os.Getpid(),
		})
	} else {
		err = o.direct(ctx, out, h, keys, id, m.Version, packPath)
	}
	if err != nil || !o.wait {
		return err
	}
	return o.waitTrial(ctx, out, h, m.Version, id)
}

func verifyPack(path string, keys []pack.Key) (*pack.Manifest, error) {
	r, err := pack.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	m, err := r.Verify(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := m.PlatformArtifacts(buildinfo.Platform()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func newRequestID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "local-" + strings.ToLower(time.Now().UTC().Format("20060102t150405")) + "-" + hex.EncodeToString(b[:])
}

// direct stages and switches in this process: no agent runs to do it.
func (o upgradeOptions) direct(ctx context.Context, out io.Writer, h home.Home, keys []pack.Key, id, version, packPath string) error {
	p := newProgressPrinter(out)
	u := updater.New(updater.Options{
		Home: h, Keys: keys,
		Progress: func(pr updater.Progress) { p.download(pr.File, pr.Done, pr.Total) },
	})
	say(out, "no agent runs for this home: staging and switching here")
	order := updater.Order{ID: id, Version: version, Source: updater.PackSource(packPath)}
	if err := u.Prepare(ctx, order); err != nil {
		return err
	}
	say(out, "staged versions/%s", version)
	if err := u.Switch(id); err != nil {
		return err
	}
	say(out, "switched: state/active.json names %s, in trial", version)
	if sup := supervisorRunning(h); sup {
		say(out, "the supervisor starts %s the next time it starts the agent", version)
	} else {
		say(out, "%s starts with the next start of the agent (no agent or supervisor runs now)", version)
	}
	return nil
}

// throughDaemon hands the request to the running agent and follows it.
func (o upgradeOptions) throughDaemon(ctx context.Context, out io.Writer, h home.Home, d agent.DaemonInfo, r agent.Request) error {
	if err := agent.SubmitRequest(h, r); err != nil {
		return fmt.Errorf("hand the pack to the agent: %w", err)
	}
	say(out, "handing the pack to the running agent (pid %d)", d.Pid)
	deadline := time.Now().Add(claimTimeout)
	for !agent.RequestClaimed(h, r.ID) {
		if time.Now().After(deadline) || !platform.ProcessAlive(d.Pid) {
			if withdrawn, _ := agent.WithdrawRequest(h, r.ID); withdrawn {
				agent.CollectRequest(h, r.ID)
				return fmt.Errorf("the agent (pid %d) did not take the request within %s; nothing was changed", d.Pid, claimTimeout)
			}
			break // claimed at the last moment
		}
		if err := sleep.For(ctx, o.poll); err != nil {
			return o.detached(out, err)
		}
	}
	p := newProgressPrinter(out)
	timeout := time.NewTimer(o.timeout)
	defer timeout.Stop()
	for {
		st, err := agent.ReadRequestStatus(h, r.ID)
		if err == nil {
			if st.Step == "download" {
				p.download(st.Detail, st.Done, st.Total)
			} else {
				p.step(st.Step, st.Detail)
			}
			if st.Final() {
				agent.CollectRequest(h, r.ID)
				if st.State == agent.RequestFailed {
					return fmt.Errorf("the agent did not switch: %s", st.Error)
				}
				if d.Supervised {
					say(out, "switched: the agent exits and the supervisor starts %s under trial", r.Version)
				} else {
					say(out, "switched: the agent (not supervised) exits with code 11; start it again to run %s", r.Version)
				}
				return nil
			}
		}
		if !platform.ProcessAlive(d.Pid) {
			return fmt.Errorf("the agent (pid %d) stopped before it switched; see its log (nothing was switched)", d.Pid)
		}
		select {
		case <-ctx.Done():
			return o.detached(out, ctx.Err())
		case <-timeout.C:
			return o.detached(out, fmt.Errorf("gave up after %s", o.timeout))
		case <-time.After(o.poll):
		}
	}
}

// detached explains that the agent goes on with a request this command no
// longer follows.
func (o upgradeOptions) detached(out io.Writer, err error) error {
	say(out, "the agent goes on with the upgrade; follow it with: molt-agent status")
	return err
}

// waitTrial waits for result.json to record the trial of version.
func (o upgradeOptions) waitTrial(ctx context.Context, out io.Writer, h home.Home, version, order string) error {
	say(out, "waiting for the trial of %s (committed after the supervisor's watch window)", version)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		if r, ok, err := h.ReadResult(); err == nil && ok && r.Order == order {
			if r.Outcome == home.OutcomeCommitted {
				say(out, "committed: %s runs", r.Version)
				return nil
			}
			logs := r.Logs
			if r.WorkloadLogs != "" {
				logs += ", workload " + r.Workload + ": " + r.WorkloadLogs
			}
			return cli.Exit(1, fmt.Errorf("rolled back to %s: %s (logs: %s)", r.Previous, r.Reason, logs))
		}
		if err := sleep.For(ctx, o.poll); err != nil {
			return fmt.Errorf("waiting for the trial: %w (it goes on; see molt-agent status)", err)
		}
	}
}

func supervisorRunning(h home.Home) bool {
	r := collectStatus(h)
	return r.Supervisor != nil && r.Supervisor.Running
}

// progressPrinter prints each new step once and download progress in
// steps of a tenth.
type progressPrinter struct {
	out       io.Writer
	last      string
	lastTenth map[string]int64
}

func newProgressPrinter(out io.Writer) *progressPrinter {
	return &progressPrinter{out: out, lastTenth: map[string]int64{}}
}

func (p *progressPrinter) step(step, detail string) {
	line := step
	if detail != "" {
		line += ": " + detail
	}
	if line == p.last || line == "" {
		return
	}
	p.last = line
	say(p.out, "  %s", line)
}

func (p *progressPrinter) download(file string, done, total int64) {
	if rest, ok := strings.CutPrefix(file, "workload/"); ok && total < 1<<20 {
		// A workload's tree can be thousands of small files: one line
		// for the workload, not one per file.
		name, _, _ := strings.Cut(rest, "/")
		if _, seen := p.lastTenth["workload/"+name]; !seen {
			p.lastTenth["workload/"+name] = 0
			say(p.out, "  copy workload %s", name)
		}
		return
	}
	if total <= 0 {
		return
	}
	tenth := done * 10 / total
	if prev, ok := p.lastTenth[file]; ok && prev == tenth {
		return
	}
	p.lastTenth[file] = tenth
	say(p.out, "  copy %s: %d%% of %.1f MiB", file, tenth*10, float64(total)/(1<<20))
}
