package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// evil holds what a terminal acts on: ESC with a CSI (clear screen) and
// an OSC (set the window title, ended by BEL), CR (overwrite the line),
// C1 CSI, DEL, a bidi override, a TAB and a newline.
const evil = "\x1b[2J\x1b]0;pwned\x07\r\u009b31m\x7f\u202eok\tcol\nrow"

// checkTerminalSafe fails when out holds a byte a terminal would act on:
// below 0x20 except newline and TAB, DEL, or a C1 control.
func checkTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		bad := (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= '\u202a' && r <= '\u202e')
		if r == utf8.RuneError {
			_, size := utf8.DecodeRuneInString(out[i:])
			bad = size == 1
		}
		if bad {
			t.Errorf("%s: %U at byte %d reaches the terminal:\n%q", what, r, i, out)
			return
		}
	}
}

// evilServer is a fake server whose every string an agent (or anyone)
// could have set holds evil.
type evilServer struct {
	agent   protocol.Agent
	run     protocol.Run
	dep     protocol.Deployment
	report  protocol.DeploymentReport
	events  []protocol.Event
	release protocol.Release
	setting protocol.Setting
	token   protocol.Token
}

func newEvilServer() *evilServer {
	at := time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC)
	e := &evilServer{}
	e.agent = protocol.Agent{ID: "a-1", Name: "web" + evil, Hostname: "host" + evil, Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0",
		Status: protocol.AgentOnline, UpgradeStatus: protocol.UpgradeUpToDate, Labels: map[string]string{"env": "prod" + evil},
		Cluster: "c" + evil, Holds: []string{"backup" + evil}, LastSeen: at, Enrolled: at, ProtocolVersion: 1,
		LastResult: &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "1.6.0", Previous: "1.5.0", Reason: "crashed" + evil, At: at},
		Workloads:  []protocol.Workload{{Name: "sensor" + evil, Version: "1.0", State: protocol.WorkloadCrashed, Reason: "refused" + evil, Since: at}}}
	e.run = protocol.Run{ID: "r-1", Text: "monthly" + evil, Status: protocol.RunPaused, Reason: "threshold" + evil, Target: "latest",
		Scope: protocol.ScopeSupervised, MaxConcurrent: 10, Selection: protocol.Selection{AgentIDs: []string{"a-1"}}, CreatedBy: "t-1", Created: at,
		Plan:     []protocol.PlanLine{{Platform: "linux/amd64", Agents: 1, Target: "1.6.0"}},
		Excluded: []protocol.Exclusion{{AgentID: "a-2", AgentName: "db" + evil, Reason: "busy" + evil}},
		Counts:   map[string]int{protocol.StateRolledBack: 1}, Total: 1}
	e.dep = protocol.Deployment{ID: "d-1", RunID: "r-1", AgentID: "a-1", AgentName: "web" + evil, Platform: "linux/amd64", Kind: protocol.KindUpgrade,
		From: "1.5.0", Target: "1.6.0", State: protocol.StateRolledBack, Reason: "rolled back" + evil, Workload: "sensor" + evil, Created: at, Ended: at}
	e.report = protocol.DeploymentReport{Deployment: e.dep, Steps: []protocol.Step{{At: at, Name: "start" + evil, Detail: "pid 42" + evil}}}
	e.events = []protocol.Event{{Seq: 1, ID: protocol.EvRunStarted, Name: "run_started", At: at, AgentID: "a-1", RunID: "r-1",
		Message: "agent web" + evil + " said", Fields: map[string]string{"reason": "r" + evil}}}
	e.release = protocol.Release{Version: "1.6.0", Released: at, Platforms: []string{"linux/amd64"}, Imported: at, Size: 1 << 20}
	e.setting = protocol.Setting{Key: "hooks.on-run-end", Value: "/bin/notify" + evil}
	e.token = protocol.Token{ID: "t-1", Name: "ci" + evil, Role: protocol.RoleOperator, Created: at}
	return e
}

func (e *evilServer) handler() http.Handler {
	mux := http.NewServeMux()
	js := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		}
	}
	mux.Handle("GET /v1/agents", js(protocol.Agents{Agents: []protocol.Agent{e.agent}}))
	mux.Handle("GET /v1/agents/a-1", js(e.agent))
	mux.Handle("GET /v1/runs", js(protocol.Runs{Runs: []protocol.Run{e.run}}))
	mux.Handle("GET /v1/runs/r-1", js(e.run))
	mux.Handle("POST /v1/runs", js(e.run))
	mux.Handle("GET /v1/runs/r-1/report", js(protocol.RunReport{Run: e.run, Deployments: []protocol.Deployment{e.dep}}))
	mux.Handle("GET /v1/deployments", js(protocol.Deployments{Deployments: []protocol.Deployment{e.dep}}))
	mux.Handle("GET /v1/deployments/d-1", js(e.report))
	mux.Handle("GET /v1/events", js(protocol.Events{Events: e.events, Next: 1}))
	mux.Handle("GET /v1/releases", js(protocol.Releases{Releases: []protocol.Release{e.release}}))
	mux.Handle("GET /v1/settings", js(protocol.Settings{Settings: []protocol.Setting{e.setting}}))
	mux.Handle("GET /v1/settings/", js(e.setting))
	mux.Handle("GET /v1/tokens", js(protocol.Tokens{Tokens: []protocol.Token{e.token}}))
	mux.HandleFunc("POST /v1/runs/r-1/cancel", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(protocol.Error{Error: "run r-1 of agent web" + evil + " is ended", Code: "conflict"})
	})
	return mux
}

// TestTextOutputEscaped: whatever control characters the server sends,
// in names, hostnames, reasons, step details, event messages, settings,
// the text output of every command shows them escaped, on stdout and on
// stderr (errors included); --json hands them on exactly.
func TestTextOutputEscaped(t *testing.T) {
	inUTC(t)
	es := newEvilServer()
	hs := httptest.NewServer(es.handler())
	defer hs.Close()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "noconfig"))
	t.Setenv(envToken, "molt_test")
	conn := []string{"--server", hs.URL}

	for _, tc := range []struct {
		args []string
		code int
		// want is a piece of the output: the data is there, escaped.
		want string
	}{
		{[]string{"agents", "list"}, 0, `web\x1b[2J\x1b]0;pwned\x07\x0d\x9b31m\x7f\u202eok\x09col\x0arow`},
		{[]string{"agents", "show", "a-1"}, 0, `host\x1b[2J`},
		{[]string{"events", "--since", "all"}, 0, `agent web\x1b[2J`},
		{[]string{"history"}, 0, `rolled back\x1b[2J`},
		{[]string{"history", "show", "d-1"}, 0, `pid 42\x1b[2J`},
		{[]string{"runs", "list"}, 0, `monthly\x1b[2J`},
		{[]string{"runs", "show", "r-1"}, 0, `threshold\x1b[2J`},
		{[]string{"runs", "report", "r-1"}, 0, `web\x1b[2J`},
		{[]string{"runs", "watch", "r-1", "--interval", "200ms"}, exitRunPaused, `reason: threshold\x1b[2J`},
		{[]string{"runs", "cancel", "r-1"}, 1, `agent web\x1b[2J`},
		{[]string{"upgrade", "--agents", "a-1", "--yes", "--wait", "--interval", "200ms"}, exitRunPaused, `db\x1b[2J`},
		{[]string{"release", "list"}, 0, "1.6.0"},
		{[]string{"settings", "list"}, 0, `/bin/notify\x1b[2J`},
		{[]string{"settings", "get", "hooks.on-run-end"}, 0, `/bin/notify\x1b[2J`},
		{[]string{"token", "list"}, 0, `ci\x1b[2J`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runPack(t, append(tc.args, conn...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			checkTerminalSafe(t, "stdout", out)
			checkTerminalSafe(t, "stderr", errOut)
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("output lacks %q:\n%s\n%s", tc.want, out, errOut)
			}
		})
	}

	// --json: the strings exactly as the server sent them.
	jsonOf := func(args ...string) []byte {
		t.Helper()
		out, errOut, code := runPack(t, append(append(args, "--json"), conn...)...)
		if code != 0 {
			t.Fatalf("%v --json: exit %d: %s", args, code, errOut)
		}
		return []byte(out)
	}
	for _, tc := range []struct {
		args []string
		got  any
		want any
	}{
		{[]string{"agents", "list"}, &[]protocol.Agent{}, &[]protocol.Agent{es.agent}},
		{[]string{"agents", "show", "a-1"}, &protocol.Agent{}, &es.agent},
		{[]string{"history"}, &[]protocol.Deployment{}, &[]protocol.Deployment{es.dep}},
		{[]string{"history", "show", "d-1"}, &protocol.DeploymentReport{}, &es.report},
		{[]string{"runs", "list"}, &[]protocol.Run{}, &[]protocol.Run{es.run}},
		{[]string{"runs", "show", "r-1"}, &protocol.Run{}, &es.run},
		{[]string{"events", "--since", "all"}, &protocol.Event{}, &es.events[0]},
		{[]string{"settings", "get", "hooks.on-run-end"}, &protocol.Setting{}, &es.setting},
	} {
		t.Run(strings.Join(tc.args, " ")+" --json", func(t *testing.T) {
			if err := json.Unmarshal(jsonOf(tc.args...), tc.got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, tc.got); d != "" {
				t.Errorf("(-sent +printed):\n%s", d)
			}
		})
	}
}

// TestLiveProgressEscaped: the live display of molt upgrade --wait sends
// its own redraw sequence and nothing the server said raw.
func TestLiveProgressEscaped(t *testing.T) {
	var b bytes.Buffer
	v := progressView{w: newEscapeWriter(&b), live: true, width: 200}
	v.show(protocol.Run{Status: "running" + evil, Total: 2, Counts: map[string]int{"odd" + evil: 1}})
	v.note("server said " + evil)
	v.done()
	out := strings.ReplaceAll(b.String(), "\r\x1b[K", "")
	checkTerminalSafe(t, "live display", out)
	if !strings.Contains(out, `running\x1b[2J`) || strings.Count(b.String(), "\r\x1b[K") != 2 {
		t.Errorf("live display %q", b.String())
	}
}

// TestEscapeWriter: a C1 control or a bidi override cut over two writes
// is escaped all the same; text without controls passes as it is.
func TestEscapeWriter(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		{[]string{"plain\ttext\n", "né ✓\n"}, "plain\ttext\nné ✓\n"},
		{[]string{"a\xc2", "\x9b31m"}, `a\x9b31m`},
		{[]string{"a\xe2\x80", "\xaeb"}, `a\u202eb`},
		{[]string{"a\x1b[2J\r\x07\x7f"}, `a\x1b[2J\x0d\x07\x7f`},
		{[]string{"bad \x9b byte"}, "bad \ufffd byte"},
	} {
		t.Run(fmt.Sprintf("%q", tc.writes), func(t *testing.T) {
			var b bytes.Buffer
			w := newEscapeWriter(&b)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write: %d %v", n, err)
				}
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}
