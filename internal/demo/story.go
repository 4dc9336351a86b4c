package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/protocol"
)

// The three hosts: two run under their supervisor as the OS service
// would run it; host-c runs its agent by hand, with no supervisor.
var hostSpecs = []struct {
	name       string
	supervised bool
}{{"host-a", true}, {"host-b", true}, {"host-c", false}}

func (d *demo) build(ctx context.Context) error {
	start := time.Now()
	d.say("\nBuilding molt %s, and three releases %s, %s and %s: each is molt-agent, molt-supervisor and", NewVersion, OldVersion, NewVersion, BadVersion)
	d.say("the operator's own agent, examples/exporter (a small monitoring agent serving /metrics), stamped")
	d.say("with the release's version ...")
	env := append(append([]string(nil), d.env...), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	ts := builds(d.bin)
	if err := buildAll(ctx, d.root, ts, env); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	d.say("built %d binaries in %s", len(ts), time.Since(start).Round(100*time.Millisecond))
	k, err := makeKey(filepath.Join(d.dir, "keys"))
	if err != nil {
		return err
	}
	d.keys = k
	packs, err := makePacks(ctx, d.molt, d.bin, filepath.Join(d.dir, "packs"), k, d.env)
	if err != nil {
		return err
	}
	d.packs = packs
	d.say("signing key %s (secret key %s, mode 0600)", k.pub, k.sec)
	d.say("signed packs (molt pack build) %s, %s, %s in %s", filepath.Base(packs[OldVersion]), filepath.Base(packs[NewVersion]),
		filepath.Base(packs[BadVersion]), filepath.Dir(packs[OldVersion]))
	d.say("\nEach pack carries the exporter as workload %q, with the spec of its pack.yaml (signed with the", workloadName)
	d.say("rest of the manifest). %s's, the broken release:\n", BadVersion)
	d.say("%s", indent(packYAML(BadVersion), "  "))
	d.say("Its molt-agent is as healthy as the others; only its exporter is broken: -fail-ready makes it")
	d.say("listen but never say ready. Each home's data/%s/%s gives its exporter its own port.", workloadName, listenFile)
	return os.MkdirAll(filepath.Join(d.dir, "logs"), 0o700)
}

func (d *demo) startServer(ctx context.Context) error {
	log := filepath.Join(d.dir, "logs", "server.log")
	if d.tail != nil {
		d.tail.watch("server", log)
	}
	tokenFile := filepath.Join(d.data, "admin.token")
	caFile := filepath.Join(d.data, "tls", "ca.pem")
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		d.addr = addr
		d.server, err = d.ps.start("molt serve", log, "", d.molt, "serve", "--dev", "--data", d.data, "--listen", addr,
			"--trusted-key", d.keys.pub, "--log-level", d.o.LogLevel)
		if err != nil {
			return err
		}
		d.client = nil
		err = d.waitFor(ctx, 30*time.Second, "molt serve answers", func() (bool, error) {
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				return false, err
			}
			if _, err := os.Stat(caFile); err != nil {
				return false, err
			}
			if d.client == nil {
				c, err := apiclient.New(apiclient.Options{Server: d.url(), Token: strings.TrimSpace(string(tok)), CAFile: caFile, Timeout: 10 * time.Second})
				if err != nil {
					return false, err
				}
				d.client = c
			}
			_, err = d.client.ServerInfo(ctx)
			return err == nil, err
		})
		if err == nil {
			break
		}
		// The free port was free when it was picked; another program may
		// have taken it since.
		if attempt < 3 && d.server.exited() && strings.Contains(tailOf(log, 5), "address already in use") {
			continue
		}
		return err
	}
	if _, err := d.client.SetSetting(ctx, "agents.poll-seconds", fmt.Sprint(pollSeconds)); err != nil {
		return fmt.Errorf("set agents.poll-seconds: %w", err)
	}
	// The CLI finds the server through its own configuration file, so an
	// operator's ~/.config/molt/cli.yaml is neither read nor needed.
	d.cliConf = filepath.Join(d.dir, "cli.yaml")
	conf := fmt.Sprintf("server: %s\ntoken_file: %s\nca: %s\n", d.url(), tokenFile, caFile)
	if err := atomicfile.WriteFile(d.cliConf, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write cli.yaml: %w", err)
	}
	d.say("\nmolt serve --dev listens on %s (embedded SQLite store and packs in %s)", d.url(), d.data)
	return d.showConsole(ctx)
}

func (d *demo) url() string { return "https://" + d.addr }

// agentConfig is a host's agent.yaml: the server, its CA, the enrollment
// token and the signing key, and a short trial so the demo is quick.
func (d *demo) agentConfig(name, token string) string {
	return fmt.Sprintf(`server: %s
ca_file: %s
enrollment_token: %q
trusted_keys: [%q]
name: %s
labels: {env: demo}
log_level: %s
supervisor:
  ready_timeout: %s
  watch: %s
  crash_budget: %d
  stop_grace: %s
`, d.url(), filepath.Join(d.data, "tls", "ca.pem"), token, d.keys.pub, name, d.o.LogLevel,
		readyTimeout, trialWatch, crashBudget, stopGrace)
}

func (d *demo) enroll(ctx context.Context) error {
	d.section("1. Three agents enroll at %s, with their exporters", OldVersion)
	et, err := d.client.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Name: "demo", Uses: len(hostSpecs), ExpiresIn: 3600})
	if err != nil {
		return fmt.Errorf("create an enrollment token: %w", err)
	}
	oldAgent := filepath.Join(d.bin, OldVersion, platformDir(), "molt-agent"+exeSuffix())
	if err := os.MkdirAll(filepath.Join(d.dir, "homes"), 0o755); err != nil {
		return err
	}
	for _, s := range hostSpecs {
		h := &host{name: s.name, supervised: s.supervised, home: filepath.Join(d.dir, "homes", s.name)}
		cfg := filepath.Join(d.dir, "logs", s.name+".agent.yaml")
		if err := atomicfile.WriteFile(cfg, []byte(d.agentConfig(s.name, et.Secret)), 0o600); err != nil {
			return err
		}
		// The exporter's port is per host configuration: it lives in the
		// workload's data directory, which no upgrade or rollback touches.
		if h.exporter, err = freeAddr(); err != nil {
			return err
		}
		data := home.New(h.home).DataDir(workloadName)
		if err := os.MkdirAll(data, 0o750); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(data, listenFile), []byte(h.exporter+"\n"), 0o644); err != nil {
			return err
		}
		// The home is laid out as on a real host, from the signed 1.0.0
		// pack (checked against the agent.yaml's trusted key): molt-agent,
		// molt-supervisor and the exporter. The service manager is left
		// alone.
		if out, err := d.quiet(ctx, oldAgent, "install", "--home", h.home, "--config", cfg, "--pack", d.packs[OldVersion], "--no-service"); err != nil {
			return fmt.Errorf("%s: molt-agent install --pack: %w\n%s", s.name, err, out)
		}
		if d.tail != nil {
			d.tail.watch(s.name, filepath.Join(h.home, "logs", "*.log"))
		}
		log := filepath.Join(d.dir, "logs", s.name+".log")
		if s.supervised {
			bin := filepath.Join(h.home, "bin", "molt-supervisor"+exeSuffix())
			h.proc, err = d.ps.start(s.name, log, h.home, bin, "run", "--home", h.home)
			d.say("%s: molt-agent install --pack %s, then molt-supervisor run --home %s", s.name, filepath.Base(d.packs[OldVersion]), h.home)
		} else {
			bin := filepath.Join(h.home, "versions", OldVersion, "molt-agent"+exeSuffix())
			h.proc, err = d.ps.start(s.name, log, "", bin, "run", "--home", h.home)
			d.say("%s: molt-agent install --pack %s, then molt-agent run --home %s   (no supervisor)", s.name, filepath.Base(d.packs[OldVersion]), h.home)
		}
		if err != nil {
			return err
		}
		d.hosts = append(d.hosts, h)
	}
	seen := map[string]bool{}
	err = d.waitFor(ctx, 60*time.Second, "the agents enroll", func() (bool, error) {
		ags, err := d.client.Agents(ctx, apiclient.AgentFilter{})
		if err != nil {
			return false, err
		}
		for _, a := range ags {
			for _, h := range d.hosts {
				if h.name == a.Name && !seen[a.Name] {
					seen[a.Name] = true
					h.id = a.ID
					sup := "no supervisor"
					if a.Supervised {
						sup = "supervisor " + a.SupervisorVersion
					}
					d.say("  enrolled %s as %s: %s %s, %s", a.Name, a.ID, a.Platform, a.Version, sup)
				}
			}
		}
		return len(seen) == len(d.hosts), nil
	})
	if err != nil {
		return err
	}
	d.say("\nThe supervisors run the exporters next to their agents (host-c has no supervisor, so nothing")
	d.say("runs its exporter). Asked on /metrics, as Prometheus would:")
	for _, h := range d.hosts {
		if h.supervised {
			if err := d.showExporter(ctx, h, OldVersion, "  "); err != nil {
				return err
			}
		}
	}
	if err := d.waitWorkloadsReported(ctx, OldVersion); err != nil {
		return err
	}
	if _, err := d.cli(ctx, nil, "agents", "list"); err != nil {
		return err
	}
	d.say("\nThe releases are imported; the server checks each pack's signature against its trusted key.")
	for _, v := range []string{OldVersion, NewVersion} {
		if _, err := d.cli(ctx, nil, "release", "import", d.packs[v]); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) upgrade(ctx context.Context) error {
	d.section("2. An upgrade run to %s, one agent at a time", NewVersion)
	supBefore := map[string]string{}
	for _, h := range d.hosts {
		if h.supervised {
			supBefore[h.name] = d.supervisorVersion(ctx, h)
		}
	}
	before := map[string]string{}
	for _, h := range d.hosts {
		if h.supervised {
			v, err := exporterVersion(ctx, h.exporter)
			if err != nil {
				return fmt.Errorf("%s: exporter: %w", h.name, err)
			}
			before[h.name] = v
		}
	}
	d.say("The release changes the agent, the supervisor and the exporter: each supervisor stops exporter\n"+
		"%s and starts %s's, and the trial commits only when molt-agent and the exporter are both ready.\n"+
		"host-c has no supervisor, so nothing there could roll a bad version back: the run's scope\n"+
		"\"supervised\" (the default) leaves it out, as the plan below says.", OldVersion, NewVersion)
	code, err := d.cli(ctx, nil, "upgrade", "--target", NewVersion, "--all", "--max-concurrent", "1",
		"--text", "demo: to "+NewVersion, "--yes", "--wait", "--interval", "500ms")
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("the run to %s did not end OK (molt upgrade exit %d)", NewVersion, code)
	}
	d.say("\nAfter each trial committed, the supervisor checked the new molt-supervisor (version, selftest)\n" +
		"and replaced itself, keeping its pid, its running agent and its running exporter:")
	agents := map[string]protocol.Agent{}
	after := map[string]string{}
	err = d.waitFor(ctx, 45*time.Second, "the supervisors upgrade themselves", func() (bool, error) {
		for _, h := range d.hosts {
			if !h.supervised {
				continue
			}
			a, err := d.client.Agent(ctx, h.id)
			if err != nil {
				return false, err
			}
			agents[h.name] = a
			if a.Version != NewVersion || a.SupervisorVersion != NewVersion || d.supervisorVersion(ctx, h) != NewVersion {
				return false, fmt.Errorf("%s: agent %s, supervisor %s", h.name, a.Version, a.SupervisorVersion)
			}
			v, err := exporterVersion(ctx, h.exporter)
			if err != nil || v != NewVersion {
				return false, fmt.Errorf("%s: exporter %q: %v", h.name, v, err)
			}
			after[h.name] = v
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tAGENT\tSUPERVISOR (bin/molt-supervisor version)\tEXPORTER (its /metrics)")
	for _, h := range d.hosts {
		if h.supervised {
			fmt.Fprintf(tw, "  %s\t%s -> %s\t%s -> %s\t%s -> %s\n", h.name, OldVersion, agents[h.name].Version,
				supBefore[h.name], d.supervisorVersion(ctx, h), before[h.name], after[h.name])
		} else {
			fmt.Fprintf(tw, "  %s\t%s (left out)\tnone\tnot run (no supervisor)\n", h.name, OldVersion)
		}
	}
	return tw.Flush()
}

func (d *demo) broken(ctx context.Context) error {
	d.section("3. A broken release: %s's exporter never becomes ready", BadVersion)
	d.say("This is what molt is for: a release that breaks the operator's own agent. Each supervisor starts\n"+
		"%s under trial: molt-agent %s starts and checks in as usual (\"server: watching\" below), but\n"+
		"exporter %s never passes its ready check. After %s the supervisor rolls the whole version back\n"+
		"by itself: molt-agent and exporter %s run again, and it records which workload failed and why.\n"+
		"The agent reports it; the server shows the deployment as rolled_back with that reason.",
		BadVersion, BadVersion, BadVersion, workloadReadyWithin, NewVersion)
	if _, err := d.cli(ctx, nil, "release", "import", d.packs[BadVersion]); err != nil {
		return err
	}
	code, err := d.cli(ctx, []int{3}, "upgrade", "--target", BadVersion, "--all", "--max-concurrent", "2",
		"--text", "demo: to "+BadVersion+" (broken)", "--yes", "--wait", "--interval", "500ms")
	if err != nil {
		return err
	}
	if code != 3 {
		return fmt.Errorf("the run to the broken %s: molt upgrade exit %d, want 3 (ended not OK)", BadVersion, code)
	}
	// The run is the one of the latest deployment of a host it included.
	var first *host
	for _, h := range d.hosts {
		if h.supervised {
			first = h
			break
		}
	}
	deps, err := d.client.Deployments(ctx, apiclient.DeploymentFilter{AgentID: first.id, Limit: 1})
	if err != nil {
		return err
	}
	if len(deps) == 0 || deps[0].RunID == "" {
		return fmt.Errorf("no run in the history of %s", first.name)
	}
	d.badRun = deps[0].RunID
	rep, err := d.client.RunReport(ctx, d.badRun)
	if err != nil {
		return err
	}
	var rolledBack string
	for _, dep := range rep.Deployments {
		if dep.State != protocol.StateRolledBack || dep.Workload != workloadName || !strings.Contains(dep.Reason, workloadName) {
			return fmt.Errorf("deployment %s of %s: %s (workload %q: %s), want rolled_back by workload %s with a reason naming it",
				dep.ID, dep.AgentName, dep.State, dep.Workload, dep.Reason, workloadName)
		}
		rolledBack = dep.ID
	}
	d.say("\nmolt upgrade exits 3 when a run ends not OK, so scripts notice. What the server recorded:")
	if _, err := d.cli(ctx, nil, "runs", "report", d.badRun); err != nil {
		return err
	}
	if rolledBack != "" {
		if _, err := d.cli(ctx, nil, "history", "show", rolledBack); err != nil {
			return err
		}
	}
	d.say("")
	var badLog string
	for _, h := range d.hosts {
		if !h.supervised {
			continue
		}
		var a protocol.Agent
		err := d.waitFor(ctx, 30*time.Second, h.name+" reports the rollback", func() (bool, error) {
			var err error
			a, err = d.client.Agent(ctx, h.id)
			return err == nil && a.Version == NewVersion && a.LastResult != nil && a.LastResult.Outcome == protocol.TrialRolledBack, err
		})
		if err != nil {
			return err
		}
		d.say("%s: rolled back because of workload %s; the failed version's logs are kept on the host\n"+
			"(state/result.json names them):", h.name, a.LastResult.Workload)
		if r, ok, err := home.New(h.home).ReadResult(); err == nil && ok && r.WorkloadLogs != "" {
			d.say("  %s   (exporter %s)", r.WorkloadLogs, BadVersion)
			if badLog == "" {
				badLog = r.WorkloadLogs
			}
		}
		d.say("  %s   (molt-agent %s)", a.LastResult.Logs, BadVersion)
		if err := d.showExporter(ctx, h, NewVersion, "  "); err != nil {
			return err
		}
	}
	if badLog != "" {
		d.say("\nWhat exporter %s said (the end of %s):", BadVersion, filepath.Base(badLog))
		d.say("%s", indent(tailOf(badLog, 3), "    "))
	}
	d.say("The operator's agent was never left broken: on every host it serves again, at %s.", NewVersion)
	return nil
}

func (d *demo) tables(ctx context.Context) error {
	d.section("4. The fleet afterwards")
	if err := d.waitWorkloadsReported(ctx, NewVersion); err != nil {
		return err
	}
	if _, err := d.cli(ctx, nil, "agents", "list"); err != nil {
		return err
	}
	d.say("host-a and host-b run %s, agent and exporter: %s is the newest release, but it rolled back on\n"+
		"them. host-c, with no supervisor, is manual_upgrade_required: no run upgrades it unless its scope\n"+
		"is \"all\".", NewVersion, BadVersion)
	_, err := d.cli(ctx, nil, "history")
	return err
}

// showExporter waits until h's exporter answers /metrics at version v and
// prints what it says.
func (d *demo) showExporter(ctx context.Context, h *host, v, prefix string) error {
	var got string
	err := d.waitFor(ctx, readyTimeout, h.name+"'s exporter serves "+v, func() (bool, error) {
		var err error
		got, err = exporterVersion(ctx, h.exporter)
		return err == nil && got == v, err
	})
	if err != nil {
		return err
	}
	d.say("%s%s: GET http://%s/metrics: exporter_build_info{version=%q}", prefix, h.name, h.exporter, got)
	return nil
}

// waitWorkloadsReported waits until the server shows every supervised
// host's exporter ready at v, so the agents table shows what runs.
func (d *demo) waitWorkloadsReported(ctx context.Context, v string) error {
	return d.waitFor(ctx, 30*time.Second, "the agents report their exporters ready at "+v, func() (bool, error) {
		for _, h := range d.hosts {
			if !h.supervised {
				continue
			}
			a, err := d.client.Agent(ctx, h.id)
			if err != nil {
				return false, err
			}
			ok := false
			for _, w := range a.Workloads {
				ok = ok || (w.Name == workloadName && w.Version == v && w.State == protocol.WorkloadReady)
			}
			if !ok {
				return false, fmt.Errorf("%s: workloads %+v", h.name, a.Workloads)
			}
		}
		return true, nil
	})
}

// buildInfoRe finds the exporter's version in its /metrics.
var buildInfoRe = regexp.MustCompile(`(?m)^exporter_build_info\{[^}]*\bversion="([^"]*)"`)

// exporterVersion asks the exporter at addr for its version, as a
// Prometheus scrape would: GET /metrics, exporter_build_info's label.
func exporterVersion(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := buildInfoRe.FindSubmatch(body)
	if m == nil {
		return "", errors.New("GET /metrics: no exporter_build_info")
	}
	return string(m[1]), nil
}

// indent prefixes every non-empty line of text.
func indent(text, prefix string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// hostHome is the home of the named host ("" if there is none).
func hostHome(hosts []*host, name string) string {
	for _, h := range hosts {
		if h.name == name {
			return h.home
		}
	}
	return ""
}

// nextSteps prints how to start the kept setup again and what to try.
func (d *demo) nextSteps() {
	exe := exeSuffix()
	var b strings.Builder
	fmt.Fprintf(&b, "Nothing runs now. To start it again (each in its own terminal, or with & at the end):\n\n")
	fmt.Fprintf(&b, "  %s serve --dev --data %s --listen %s --trusted-key %s\n", d.molt, d.data, d.addr, d.keys.pub)
	for _, h := range d.hosts {
		if h.supervised {
			fmt.Fprintf(&b, "  %s run --home %s\n", filepath.Join(h.home, "bin", "molt-supervisor"+exe), h.home)
		} else {
			fmt.Fprintf(&b, "  %s run --home %s\n", filepath.Join(h.home, "versions", OldVersion, "molt-agent"+exe), h.home)
		}
	}
	fmt.Fprintf(&b, "\nThe supervisors start the exporters again; ask them as Prometheus would:\n\n")
	for _, h := range d.hosts {
		if h.supervised && h.exporter != "" {
			fmt.Fprintf(&b, "  curl -s http://%s/metrics | grep build_info     # %s\n", h.exporter, h.name)
		}
	}
	fmt.Fprintf(&b, "\nThen, as the operator:\n\n")
	fmt.Fprintf(&b, "  export MOLT_SERVER=%s MOLT_CA=%s MOLT_TOKEN_FILE=%s\n", d.url(),
		filepath.Join(d.data, "tls", "ca.pem"), filepath.Join(d.data, "admin.token"))
	fmt.Fprintf(&b, "  alias molt=%s\n", d.molt)
	fmt.Fprintf(&b, "  molt console link           # a one-time sign-in link to the web console, %s/console/\n", d.url())
	fmt.Fprintf(&b, "  molt agents list            # with each host's workloads\n  molt history\n")
	if d.badRun != "" {
		fmt.Fprintf(&b, "  molt runs report %s\n", d.badRun)
	}
	if a := hostHome(d.hosts, "host-a"); a != "" {
		fmt.Fprintf(&b, "  cat %s   # the broken exporter's output, kept\n", filepath.Join(a, "logs", home.WorkloadLogName(workloadName, BadVersion)))
	}
	fmt.Fprintf(&b, "  molt events --since all\n  molt events --follow        # and in another terminal:\n")
	fmt.Fprintf(&b, "  molt upgrade --target %s --all --yes --wait               # a revert; the supervisors follow\n", OldVersion)
	fmt.Fprintf(&b, "  molt upgrade --target %s --all --scope all --yes --wait   # host-c too: with no supervisor its agent\n", NewVersion)
	fmt.Fprintf(&b, "      # switches and exits (11); start %s run --home %s to finish\n",
		filepath.Join("versions", NewVersion, "molt-agent"+exe), hostHome(d.hosts, "host-c"))
	fmt.Fprintf(&b, "\nRemove it with: rm -rf %s", d.dir)
	d.say("%s", b.String())
}

// cli runs the demo's molt as an operator types it: the command is shown,
// and its output goes to the terminal (so molt upgrade --wait draws its
// live progress there). An exit code other than 0 and those in ok is an
// error.
func (d *demo) cli(ctx context.Context, ok []int, args ...string) (int, error) {
	d.say("\n$ molt %s", quoteArgs(args))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.molt, args...)
	cmd.Env = append(append([]string(nil), d.env...), "MOLT_CLI_CONFIG="+d.cliConf)
	cmd.Stdout, cmd.Stderr = d.o.Stdout, d.o.Stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return -1, fmt.Errorf("molt %s: took longer than 3 minutes", quoteArgs(args))
		}
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		for _, c := range ok {
			if c == code {
				return code, nil
			}
		}
		return code, fmt.Errorf("molt %s: exit %d", quoteArgs(args), code)
	}
	if err != nil {
		return -1, fmt.Errorf("molt %s: %w", quoteArgs(args), err)
	}
	return 0, nil
}

// quiet runs a short command and returns its combined output.
func (d *demo) quiet(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = d.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// supervisorVersion asks a home's service executable for its version, as
// an administrator on the host would.
func (d *demo) supervisorVersion(ctx context.Context, h *host) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.home, "bin", "molt-supervisor"+exeSuffix()), "version", "--json")
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		return "?"
	}
	var info buildinfo.Info
	if json.Unmarshal(out, &info) != nil || info.Version == "" {
		return "?"
	}
	return info.Version
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$()") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
