package demo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/platform"
)

func TestFindModuleRoot(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("repo/go.mod", "// molt\nmodule github.com/moltfleet/molt\n\ngo 1.26\n")
	write("repo/internal/x/keep", "")
	write("repo/vendored/go.mod", "module example.com/other\n")
	write("repo/vendored/sub/keep", "")
	write("quoted/go.mod", "module \"github.com/moltfleet/molt\"\n")
	write("elsewhere/go.mod", "module github.com/moltfleet/moltx\n")
	write("nomodule/go.mod", "go 1.26\n")
	for _, tc := range []struct {
		name, from, want string
	}{
		{"at the root", "repo", "repo"},
		{"below the root", "repo/internal/x", "repo"},
		{"past another module", "repo/vendored/sub", "repo"},
		{"quoted module path", "quoted", "quoted"},
		{"another module", "elsewhere", ""},
		{"no module line", "nomodule", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindModuleRoot(filepath.Join(dir, tc.from))
			if tc.want == "" {
				if !errors.Is(err, ErrNotInRepository) {
					t.Fatalf("FindModuleRoot = %q, %v; want ErrNotInRepository", got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tc.want) {
				t.Fatalf("FindModuleRoot = %q, %v; want %q", got, err, filepath.Join(dir, tc.want))
			}
		})
	}
}

func TestCleanEnv(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "MOLT_SERVER=https://prod:8443", "molt_token=x", "HOME=/root", "XMOLT_A=1"})
	want := []string{"PATH=/bin", "HOME=/root", "XMOLT_A=1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("cleanEnv (-want +got):\n%s", d)
	}
}

func TestQuoteArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agents", "list"}, "agents list"},
		{[]string{"upgrade", "--text", "demo: to 1.1.0"}, `upgrade --text "demo: to 1.1.0"`},
		{[]string{"x", ""}, `x ""`},
	} {
		if got := quoteArgs(tc.args); got != tc.want {
			t.Errorf("quoteArgs(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

func TestTailerPrintsCompleteLines(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	tl := newTailer(&out, &sync.Mutex{})
	tl.watch("host-a", filepath.Join(dir, "*.log"))
	log := filepath.Join(dir, "agent.log")
	if err := os.WriteFile(log, []byte("one\ntw"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl.poll()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("o\nthree\n")
	f.Close()
	tl.poll()
	tl.poll()
	want := "    [host-a/agent.log] one\n    [host-a/agent.log] two\n    [host-a/agent.log] three\n"
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Fatalf("tailer output (-want +got):\n%s", d)
	}
}

func TestNextStepsNameTheKeptSetup(t *testing.T) {
	var out bytes.Buffer
	d := &demo{out: &out, dir: "/d", molt: "/d/bin/molt", data: "/d/server", addr: "127.0.0.1:9", badRun: "r-2",
		keys:  keys{pub: "/d/keys/molt.pub"},
		hosts: []*host{{name: "host-a", home: "/d/homes/host-a", supervised: true, exporter: "127.0.0.1:10"}, {name: "host-c", home: "/d/homes/host-c"}}}
	d.nextSteps()
	for _, want := range []string{
		filepath.FromSlash("/d/bin/molt") + " serve --dev --data /d/server --listen 127.0.0.1:9 --trusted-key /d/keys/molt.pub",
		filepath.Join("/d/homes/host-a", "bin", "molt-supervisor"+exeSuffix()) + " run --home /d/homes/host-a",
		filepath.Join("/d/homes/host-c", "versions", OldVersion, "molt-agent"+exeSuffix()) + " run --home /d/homes/host-c",
		"export MOLT_SERVER=https://127.0.0.1:9 MOLT_CA=" + filepath.Join("/d/server", "tls", "ca.pem") + " MOLT_TOKEN_FILE=" + filepath.Join("/d/server", "admin.token"),
		"curl -s http://127.0.0.1:10/metrics",
		filepath.Join("/d/homes/host-a", "logs", "workload-exporter-"+BadVersion+".log"),
		"molt agents list", "molt history", "molt runs report r-2", "molt events --since all",
		"molt console link           # a one-time sign-in link to the web console, https://127.0.0.1:9/console/",
		"rm -rf /d",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("next steps lack %q:\n%s", want, out.String())
		}
	}
}

func needLong(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the whole demo (skipped with -short)")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the demo's test drives Unix processes")
	}
}

// TestDemo runs the whole demo as "molt demo" does and checks its story
// from the output: what a user reads is what the test reads.
func TestDemo(t *testing.T) {
	needLong(t)
	parent := t.TempDir()
	var out e2etest.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	start := time.Now()
	// Hold: the fleet stays up after the story (molt demo --keep) until
	// the context ends; checkHeld signs in to its console meanwhile.
	runCtx, stopHold := context.WithCancel(ctx)
	defer stopHold()
	held := make(chan error, 1)
	go func() { held <- checkHeld(runCtx, &out, stopHold) }()
	err := Run(runCtx, Options{Dir: parent, Stdout: &out, Stderr: &out, Hold: true})
	text := out.String()
	stopHold() // a demo that never held would leave checkHeld waiting
	if herr := <-held; herr != nil {
		t.Errorf("the fleet left running: %v", herr)
	}
	t.Logf("the demo took %s; %s", time.Since(start).Round(100*time.Millisecond), buildLine(text))
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, text)
	}

	// The console's address and a sign-in link, once the server is up.
	if !regexp.MustCompile(`(?m)^console: https://127\.0\.0\.1:\d+/console/ `).MatchString(text) ||
		!regexp.MustCompile(`(?m)^sign in once, within 10 minutes, as admin: https://127\.0\.0\.1:\d+/console/#signin=moltc_\S+$`).MatchString(text) {
		t.Errorf("the demo does not show the console's address and a sign-in link")
	}
	// 1. Three agents enroll at the old version, and the supervised
	// hosts' exporters (installed from the pack) serve it.
	for _, h := range []string{"host-a", "host-b", "host-c"} {
		if !regexp.MustCompile(`enrolled ` + h + ` as a-\w+: \S+ ` + regexp.QuoteMeta(OldVersion) + `,`).MatchString(text) {
			t.Errorf("%s did not enroll at %s", h, OldVersion)
		}
	}
	exporters := map[string]string{}
	enrolled := section(text, "== 1.", "== 2.")
	for _, h := range []string{"host-a", "host-b"} {
		m := exporterLine(h, OldVersion).FindStringSubmatch(enrolled)
		if m == nil {
			t.Errorf("%s: no exporter serving %s after the install:\n%s", h, OldVersion, enrolled)
			continue
		}
		exporters[h] = m[1]
	}
	if exporters["host-a"] != "" && exporters["host-a"] == exporters["host-b"] {
		t.Errorf("host-a and host-b share the exporter address %s", exporters["host-a"])
	}
	// 2. The run to the new version ends OK with both supervised agents,
	// host-c left out, and the supervisors upgraded themselves; the
	// exporters went to the new version with their agents.
	if !strings.Contains(text, "host-c)  not supervised") {
		t.Errorf("the plan does not show host-c left out as not supervised")
	}
	if !regexp.MustCompile(`run r-\d+ ended_ok: succeeded 2\n`).MatchString(text) {
		t.Errorf("the run to %s did not end ok with 2 succeeded", NewVersion)
	}
	for _, h := range []string{"host-a", "host-b"} {
		re := regexp.MustCompile(`(?m)^  ` + h + ` +1\.0\.0 -> 1\.1\.0 +1\.0\.0 -> 1\.1\.0 +1\.0\.0 -> 1\.1\.0$`)
		if !re.MatchString(text) {
			t.Errorf("%s: agent, supervisor and exporter not shown going 1.0.0 -> 1.1.0", h)
		}
	}
	// 3. The broken run: both deployments rolled back by the exporter,
	// with a reason naming it, and the exporters serve the new version
	// again on the same addresses.
	report := section(text, "$ molt runs report", "$ molt history show")
	rolled := regexp.MustCompile(`(?m)^d-\d+ .* upgrade +1\.1\.0 +1\.2\.0 +rolled_back .*workload exporter`).FindAllString(report, -1)
	if len(rolled) != 2 {
		t.Errorf("molt runs report shows %d deployments rolled_back by workload exporter, want 2:\n%s", len(rolled), report)
	}
	if !strings.Contains(text, "run r-2 ended_not_ok: rolled_back 2") {
		t.Errorf("the broken run did not end not OK with 2 rolled back")
	}
	afterBroken := section(text, "== 3.", "== 4.")
	if !strings.Contains(afterBroken, "exporter: -fail-ready: /metrics will never answer") {
		t.Errorf("the end of the broken exporter's log is not shown")
	}
	for _, h := range []string{"host-a", "host-b"} {
		if !strings.Contains(afterBroken, h+": rolled back because of workload exporter") {
			t.Errorf("%s: the rollback is not shown naming the workload", h)
		}
		if !regexp.MustCompile(`(?m)^  \S+/homes/` + h + `/logs/workload-exporter-1\.2\.0\.log   \(exporter 1\.2\.0\)$`).MatchString(afterBroken) {
			t.Errorf("%s: the failed exporter's log, named by result.json, is not shown", h)
		}
		if m := exporterLine(h, NewVersion).FindStringSubmatch(afterBroken); m == nil || m[1] != exporters[h] {
			t.Errorf("%s: the exporter does not serve %s again at %s after the rollback", h, NewVersion, exporters[h])
		}
	}
	// 4. The agents table at the end: the supervised agents on the new
	// version, host-c untouched.
	final := section(text, "== 4.", "$ molt history")
	for h, v := range map[string]string{"host-a": NewVersion, "host-b": NewVersion, "host-c": OldVersion} {
		re := regexp.MustCompile(`(?m)^a-\w+ +` + h + ` +\S+ +` + regexp.QuoteMeta(v) + ` +online `)
		if !re.MatchString(final) {
			t.Errorf("final agents list: %s is not online at %s:\n%s", h, v, final)
		}
	}
	if !strings.Contains(section(text, "$ molt history\n", "Everything the demo"), "succeeded") {
		t.Errorf("the history does not show the succeeded deployments")
	}
	// Nothing answers where the exporters served: the supervisors stopped
	// them (or the demo killed them).
	for h, addr := range exporters {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: something still listens at the exporter's address %s", h, addr)
		}
	}
	if !strings.Contains(text, "Everything the demo started has stopped.") || !strings.Contains(text, "Removed ") {
		t.Errorf("the demo does not say it stopped everything and removed its directory")
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
	checkNothingLeft(t, parent)
}

// TestDemoInterrupted cancels the demo once its agents run, as a ^C does,
// and checks that it stops everything and removes its directory.
func TestDemoInterrupted(t *testing.T) {
	needLong(t)
	parent := t.TempDir()
	var out e2etest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil && !strings.Contains(out.String(), "enrolled host-c") {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	err := Run(ctx, Options{Dir: parent, Stdout: &out, Stderr: &out})
	t.Logf("interrupted and stopped after %s; %s", time.Since(start).Round(100*time.Millisecond), buildLine(out.String()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Interrupted: stopping everything") {
		t.Errorf("the demo does not say it was interrupted:\n%s", out.String())
	}
	checkNothingLeft(t, parent)
}

// checkNothingLeft fails if the demo left its directory under parent or a
// process running from it.
func checkNothingLeft(t *testing.T, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", filepath.Join(parent, e.Name()))
	}
	if runtime.GOOS != "linux" {
		return
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(parent)) {
			t.Errorf("still running: pid %s: %s", filepath.Base(p), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
		if stat, err := os.ReadFile(filepath.Join(p, "stat")); err == nil {
			// After the parenthesized command name: state, ppid, pgrp.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 {
				f := strings.Fields(string(stat[i+1:]))
				if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && f[0] != "Z" {
					t.Errorf("a child of the test still runs: pid %s: %s", filepath.Base(p), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
				}
			}
		}
	}
}

// exporterLine matches the demo's line for host's exporter serving v;
// its group is the address.
func exporterLine(host, v string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^ *` + host + `: GET http://(127\.0\.0\.1:\d+)/metrics: exporter_build_info\{version="` + regexp.QuoteMeta(v) + `"\}$`)
}

// section returns the text from the first from to the next to after it.
func section(text, from, to string) string {
	i := strings.Index(text, from)
	if i < 0 {
		return ""
	}
	rest := text[i:]
	if j := strings.Index(rest[len(from):], to); j >= 0 {
		return rest[:len(from)+j]
	}
	return rest
}

// buildLine is the demo's line saying how long the build took.
func buildLine(text string) string {
	if m := regexp.MustCompile(`built \d+ binaries in \S+`).FindString(text); m != "" {
		return m
	}
	return "no build line"
}

func TestExporterVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // "" for an error
	}{
		{"the exporter's metrics", 200, "# HELP exporter_build_info The exporter's version.\n# TYPE exporter_build_info gauge\n" +
			`exporter_build_info{version="1.1.0",workload_version="1.1.0"} 1` + "\nexporter_scrapes_total 3\n", "1.1.0"},
		{"labels in another order", 200, `exporter_build_info{workload_version="1.0.0",version="1.0.0"} 1` + "\n", "1.0.0"},
		{"not ready", 503, "not ready (-fail-ready)\n", ""},
		{"no build info", 200, "up 1\n", ""},
		{"a look-alike label", 200, `exporter_build_info{old_version="9.9.9"} 1` + "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			got, err := exporterVersion(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("exporterVersion = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("exporterVersion = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestKillRecordedWorkloads starts a "workload" that leads its own
// process group with a child of its own, as the supervisor starts them,
// records it in state/workloads.json, and checks that the demo's clean-up
// kills the group, and that a record naming another process (a reused
// pid) is left alone.
func TestKillRecordedWorkloads(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("process groups: Unix")
	}
	start := func() *exec.Cmd {
		t.Helper()
		// The shell's child sleep is in the group and must die with it.
		cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
		platform.PrepareChild(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = platform.KillProcess(cmd.Process.Pid); _ = cmd.Wait() })
		return cmd
	}
	target, other := start(), start()
	id := func(cmd *exec.Cmd) platform.ProcessIdentity {
		t.Helper()
		for range 100 {
			if p, err := platform.IdentifyProcess(cmd.Process.Pid); err == nil && p.Exe != "" {
				return p
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("cannot identify pid %d", cmd.Process.Pid)
		return platform.ProcessIdentity{}
	}
	reused := id(other)
	reused.Start += 1_000_000 // the same pid, another process
	h := home.New(t.TempDir())
	err := h.WriteWorkloadState(home.WorkloadState{Workloads: []home.WorkloadStatus{
		{Name: "exporter", Version: "1.1.0", State: home.WorkloadReady, Process: id(target)},
		{Name: "other", Version: "1.1.0", State: home.WorkloadReady, Process: reused},
		{Name: "stopped", Version: "1.1.0", State: home.WorkloadStopped},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		for i := 0; len(groupMembers(target.Process.Pid)) < 2; i++ {
			if i == 100 {
				t.Fatalf("the workload's group never had its two processes: %v", groupMembers(target.Process.Pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	killRecordedWorkloads(h.Dir, zap.NewNop())
	done := make(chan error, 1)
	go func() { done <- target.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the recorded workload still runs")
	}
	if !platform.ProcessAlive(other.Process.Pid) {
		t.Error("a process whose identity differs from the record was killed")
	}
	if runtime.GOOS == "linux" {
		// The group's other member, the sleep, went with its leader.
		time.Sleep(100 * time.Millisecond)
		if m := groupMembers(target.Process.Pid); len(m) > 0 {
			t.Errorf("processes of the workload's group outlived its kill: %v", m)
		}
	}
}

// groupMembers lists the live (not zombie) processes of process group
// pgid (Linux).
func groupMembers(pgid int) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// After the parenthesized command name: state, ppid, pgrp.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
				out = append(out, filepath.Base(filepath.Dir(p)))
			}
		}
	}
	return out
}

// checkHeld waits until the demo says the fleet keeps running, then signs
// in to its console with the fresh one-time link (as a browser following
// it does: POST /v1/session with the code) and ends the hold.
func checkHeld(ctx context.Context, out *e2etest.Buffer, stop context.CancelFunc) error {
	defer stop()
	link := regexp.MustCompile(`(?m)^sign in once, within 10 minutes, as admin: (https://[^/]+)/console/#signin=(moltc_\S+)$`)
	ca := regexp.MustCompile(`(?m)^console: https://\S+/console/ \(the browser warns of the --dev CA, (\S+),`)
	for {
		text := out.String()
		if i := strings.Index(text, "== The fleet keeps running"); i >= 0 {
			held := text[i:]
			m, c := link.FindStringSubmatch(held), ca.FindStringSubmatch(held)
			if m != nil && c != nil {
				return signInWithCode(ctx, c[1], m[1], m[2])
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("the demo ended without saying the fleet keeps running")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func signInWithCode(ctx context.Context, caFile, base, code string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := c.Get(base + "/console/")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("GET /console/: %s", res.Status)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/session", strings.NewReader(`{"code":"`+code+`"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err = c.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		return fmt.Errorf("POST /v1/session with the link's code: %s", res.Status)
	}
	return nil
}
