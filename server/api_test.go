package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// TestAuthorizationMatrix sends every operator route with no token, a bad
// token and each role, and every agent route with no credential and
// another agent's credential.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	b := e.newAgent("b", "1.0.0")
	tokens := map[string]string{"none": "", "bad": "molt_not-a-token", protocol.RoleViewer: e.tokens[protocol.RoleViewer],
		protocol.RoleOperator: e.tokens[protocol.RoleOperator], protocol.RoleAdmin: e.tokens[protocol.RoleAdmin]}
	for _, rt := range e.s.routeTable() {
		if rt.auth != authToken && rt.auth != authMetrics {
			continue
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{id}", "x-1", "{version}", "9.9.9", "{key...}", "hooks.timeout").Replace(path)
		for who, tok := range tokens {
			code, pe := e.do(method, path, tok, nil, nil)
			want := "allowed"
			switch {
			case who == "none" || who == "bad":
				want = "401"
			case protocol.RoleRank(who) < protocol.RoleRank(rt.role):
				want = "403"
			}
			got := "allowed"
			if code == 401 || code == 403 {
				got = fmt.Sprint(code)
			}
			if got != want {
				t.Errorf("%s %s as %s: %d %q, want %s", method, path, who, code, pe.Error, want)
			}
			if (code == 401 && pe.Code != protocol.CodeUnauthorized) || (code == 403 && pe.Code != protocol.CodeForbidden) {
				t.Errorf("%s %s as %s: code %q", method, path, who, pe.Code)
			}
		}
	}
	// Agent routes.
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "2.0.0", Scope: protocol.ScopeAll})
	for _, path := range []string{"/v1/agent/checkin", "/v1/agent/report", "/v1/packs/1.0.0/manifest.json"} {
		method := "POST"
		if strings.HasPrefix(path, "/v1/packs") {
			method = "GET"
		}
		if code, pe := e.do(method, path, "", nil, nil); code != 401 || pe.Code != protocol.CodeUnauthorized {
			t.Errorf("%s without credential: %d %+v", path, code, pe)
		}
		if code, _ := e.do(method, path, "molta_forged", nil, nil); code != 401 {
			t.Errorf("%s with a forged credential: %d", path, code)
		}
	}
	// b's credential with a's identity is a clone; b's credential on a's
	// order is not found.
	if code, pe := e.do("POST", "/v1/agent/checkin", b.cred, protocol.CheckinRequest{Status: a.st}, nil); code != 409 || pe.Code != protocol.CodeIdentityCloned {
		t.Errorf("checkin with another agent's credential: %d %+v", code, pe)
	}
	var ds protocol.Deployments
	e.must("GET", "/v1/deployments", protocol.RoleViewer, nil, &ds)
	if len(ds.Deployments) == 0 {
		t.Fatal("no deployment")
	}
	if code, pe := e.do("POST", "/v1/agent/report", b.cred, protocol.ReportRequest{OrderID: ds.Deployments[0].ID, Phase: protocol.StateDownloading}, nil); code != 404 || pe.Code != protocol.CodeNotFound {
		t.Errorf("report on another agent's order: %d %+v", code, pe)
	}
	// Operator tokens are not agent credentials.
	if code, _ := e.do("POST", "/v1/agent/checkin", e.tokens[protocol.RoleAdmin], protocol.CheckinRequest{Status: a.st}, nil); code != 401 {
		t.Errorf("checkin with an admin token: %d", code)
	}
	// Packs: agents and viewers may download.
	for _, tok := range []string{a.cred, b.cred, e.tokens[protocol.RoleViewer]} {
		if code, pe := e.do("GET", "/v1/packs/1.0.0/manifest.json", tok, nil, nil); code != 200 {
			t.Errorf("pack download: %d %+v", code, pe)
		}
	}
	// Revoked agents are refused with their own code.
	e.must("POST", "/v1/agents/"+b.id+"/revoke", protocol.RoleAdmin, nil, nil)
	if code, pe := e.do("POST", "/v1/agent/checkin", b.cred, protocol.CheckinRequest{Status: b.st}, nil); code != 401 || pe.Code != protocol.CodeAgentRevoked {
		t.Errorf("revoked agent: %d %+v", code, pe)
	}
}

func TestEnrollment(t *testing.T) {
	e := newEnv(t)
	one, err := e.s.CreateEnrollToken(context.Background(), protocol.EnrollTokenRequest{Uses: 1, ExpiresIn: 60})
	if err != nil {
		t.Fatal(err)
	}
	req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: one.Secret, Name: "n", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Fingerprint: "f"}
	if code, pe := e.do("POST", "/v1/agent/enroll", "", req, nil); code != 200 {
		t.Fatalf("enroll: %d %+v", code, pe)
	}
	if code, pe := e.do("POST", "/v1/agent/enroll", "", req, nil); code != 401 || pe.Code != protocol.CodeEnrollToken || !strings.Contains(pe.Error, "used up") {
		t.Fatalf("second use: %d %+v", code, pe)
	}
	two, _ := e.s.CreateEnrollToken(context.Background(), protocol.EnrollTokenRequest{Uses: 5, ExpiresIn: 60})
	req.EnrollmentToken = two.Secret
	e.clock.Add(2 * time.Minute)
	if code, pe := e.do("POST", "/v1/agent/enroll", "", req, nil); code != 401 || !strings.Contains(pe.Error, "expired") {
		t.Fatalf("expired: %d %+v", code, pe)
	}
	for _, bad := range []func(*protocol.EnrollRequest){
		func(r *protocol.EnrollRequest) { r.Platform = "linux" },
		func(r *protocol.EnrollRequest) { r.OSFamily = "plan9" },
		func(r *protocol.EnrollRequest) { r.Version = "../x" },
		func(r *protocol.EnrollRequest) { r.Fingerprint = "" },
		func(r *protocol.EnrollRequest) { r.Name = strings.Repeat("x", 300) },
		func(r *protocol.EnrollRequest) { r.Labels = map[string]string{"bad key": "v"} },
	} {
		r := req
		r.EnrollmentToken = e.enroll
		bad(&r)
		if code, pe := e.do("POST", "/v1/agent/enroll", "", r, nil); code != 400 || pe.Code != protocol.CodeBadRequest {
			t.Errorf("%+v: %d %+v", r, code, pe)
		}
	}
	r := req
	r.ProtocolVersion = 0
	r.EnrollmentToken = e.enroll
	if code, pe := e.do("POST", "/v1/agent/enroll", "", r, nil); code != http.StatusUpgradeRequired || pe.Code != protocol.CodeProtocol {
		t.Errorf("old protocol: %d %+v", code, pe)
	}
	// A newer agent may send fields this server does not know: accepted.
	newer := req
	newer.EnrollmentToken = e.enroll
	newer.Fingerprint = "f-newer"
	b, _ := json.Marshal(newer)
	b = append(b[:len(b)-1], []byte(`,"field_of_a_newer_agent":{"x":1}}`)...)
	if code, pe := e.do("POST", "/v1/agent/enroll", "", b, nil); code != 200 {
		t.Errorf("enroll with a field of a newer agent: %d %+v", code, pe)
	}
	// An operator's unknown field is a typo: refused, naming it.
	if code, pe := e.do("PUT", "/v1/settings/activation-upgrade.linux", e.tokens[protocol.RoleAdmin], []byte(`{"valeu":"true"}`), nil); code != 400 || !strings.Contains(pe.Error, "valeu") {
		t.Errorf("operator request with an unknown field: %d %+v", code, pe)
	}
	if code, pe := e.do("POST", "/v1/agent/enroll", "", bytes.Repeat([]byte(" "), protocol.MaxBodySize+10), nil); code != 413 || pe.Code != protocol.CodeTooLarge {
		t.Errorf("huge body: %d %+v", code, pe)
	}
}

func TestActivationUpgrade(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64", "windows/amd64")
	e.must("PUT", "/v1/settings/activation-upgrade.linux", protocol.RoleAdmin, protocol.SettingRequest{Value: "true"}, nil)
	e.must("PUT", "/v1/settings/activation-upgrade.unix", protocol.RoleAdmin, protocol.SettingRequest{Value: "true"}, nil)
	e.must("PUT", "/v1/settings/agents.min-auto-upgrade-version", protocol.RoleAdmin, protocol.SettingRequest{Value: "0.5.0"}, nil)
	cases := []struct {
		name   string
		mod    func(*protocol.EnrollRequest)
		result string
		reason string
	}{
		{"eligible", nil, "requested", ""},
		{"unsupervised", func(r *protocol.EnrollRequest) { r.Supervised = false }, "skipped", "not supervised"},
		{"too old", func(r *protocol.EnrollRequest) { r.Version = "0.1.0" }, "skipped", "manual upgrade required"},
		{"reboot", func(r *protocol.EnrollRequest) { r.PendingReboot = true }, "skipped", "pending reboot"},
		{"disk", func(r *protocol.EnrollRequest) { r.FreeDiskBytes = 10 << 20 }, "skipped", "not enough disk"},
		{"no pack", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "aix/ppc64", "unix" }, "skipped", "no pack for its platform"},
		{"os not supported", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "plan9/amd64", "unix" }, "skipped", "platform not supported"},
		{"family off", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "windows/amd64", "windows" }, "skipped", "upgrade on activation is off for windows agents"},
		{"at target", func(r *protocol.EnrollRequest) { r.Version = "2.0.0" }, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll, Name: tc.name, Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Supervised: true, Fingerprint: "fp-" + tc.name}
			if tc.mod != nil {
				tc.mod(&req)
			}
			var resp protocol.EnrollResponse
			e.must("POST", "/v1/agent/enroll", "", req, &resp)
			if resp.Activation != tc.result || !strings.Contains(resp.ActivationReason, tc.reason) {
				t.Fatalf("activation %q %q, want %q %q", resp.Activation, resp.ActivationReason, tc.result, tc.reason)
			}
			wantEv := map[string]int{"requested": protocol.EvUpgradeRequested, "skipped": protocol.EvActivationUpgradeSkipped}[tc.result]
			if tc.result == "requested" {
				a := &simAgent{e: e, id: resp.AgentID, cred: resp.Credential, st: protocol.Status{ProtocolVersion: 1, Fingerprint: req.Fingerprint, Platform: req.Platform, OSFamily: req.OSFamily, Version: req.Version, Supervised: true}}
				a.checkin() // the first check-in; the scheduler hands the order over on the next pass
				e.schedule()
				if o := upgradeOrder(a.checkin()); o == nil || o.Version != "2.0.0" {
					t.Fatalf("no activation order: %+v", o)
				}
			}
			if wantEv != 0 && !e.hasEvent(wantEv, resp.AgentID) {
				t.Errorf("no event %d", wantEv)
			}
		})
	}
}

func TestAgentStatus(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	e.must("PUT", "/v1/settings/agents.min-auto-upgrade-version", protocol.RoleAdmin, protocol.SettingRequest{Value: "1.0.0"}, nil)
	cur := e.newAgent("cur", "2.0.0")
	rec := e.newAgent("rec", "1.5.0")
	man := e.newAgent("man", "1.5.0", func(r *protocol.EnrollRequest) { r.Supervised = false })
	old := e.newAgent("old", "0.9.0")
	_ = e.newAgent("gone", "2.0.0")
	e.clock.Add(31 * 24 * time.Hour)
	for _, a := range []*simAgent{cur, rec, man, old} {
		a.checkin()
	}
	var list protocol.Agents
	e.must("GET", "/v1/agents", protocol.RoleViewer, nil, &list)
	got := map[string]string{}
	for _, a := range list.Agents {
		got[a.Name] = a.Status + " " + a.UpgradeStatus
	}
	want := map[string]string{"cur": "online up_to_date", "rec": "online upgrade_recommended", "man": "online manual_upgrade_required", "old": "online manual_upgrade_required"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	e.must("GET", "/v1/agents?inactive=1&version=2.0.0", protocol.RoleViewer, nil, &list)
	if len(list.Agents) != 2 {
		t.Fatalf("with inactive: %d agents", len(list.Agents))
	}
}

func TestReleases(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	// A pack signed by an untrusted key is refused with the reason.
	_, other, _ := pack.GenerateKey(rand.Reader)
	code, pe := e.do("POST", "/v1/releases", e.tokens[protocol.RoleAdmin], makePack(t, other, "1.1.0", "", "linux/amd64"), nil)
	if code != 422 || pe.Code != protocol.CodePackRejected || !strings.Contains(pe.Error, "not trusted") {
		t.Fatalf("untrusted pack: %d %+v", code, pe)
	}
	if code, pe := e.do("POST", "/v1/releases", e.tokens[protocol.RoleAdmin], []byte("not a tar"), nil); code != 422 {
		t.Fatalf("garbage: %d %+v", code, pe)
	}
	if code, _ := e.do("POST", "/v1/releases", e.tokens[protocol.RoleAdmin], makePack(t, e.sk, "1.0.0", "", "linux/amd64"), nil); code != 409 {
		t.Fatalf("duplicate import: %d", code)
	}
	e.importPack("1.10.0", "", "linux/amd64")
	var rels protocol.Releases
	e.must("GET", "/v1/releases", protocol.RoleViewer, nil, &rels)
	if len(rels.Releases) != 2 || rels.Releases[0].Version != "1.10.0" {
		t.Fatalf("not newest first: %+v", rels)
	}
	// Range requests resume downloads.
	req, _ := http.NewRequest("GET", e.hs.URL+"/v1/packs/1.0.0/linux_amd64/molt-agent", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	req.Header.Set("Range", "bytes=4-")
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := new(bytes.Buffer)
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || buf.String() != "0 linux/amd64 agent binary" {
		t.Fatalf("range: %d %q", resp.StatusCode, buf)
	}
	if code, _ := e.do("GET", "/v1/packs/1.0.0/../molt.db", e.tokens[protocol.RoleViewer], nil, nil); code != 404 {
		t.Fatalf("escape: %d", code)
	}
	// Removal is refused while a pin or a run needs the release.
	e.must("PUT", "/v1/settings/version.linux/amd64", protocol.RoleAdmin, protocol.SettingRequest{Value: "1.0.0"}, nil)
	if code, pe := e.do("DELETE", "/v1/releases/1.0.0", e.tokens[protocol.RoleAdmin], nil, nil); code != 409 || !strings.Contains(pe.Error, "pinned") {
		t.Fatalf("remove pinned: %d %+v", code, pe)
	}
	e.must("DELETE", "/v1/settings/version.linux/amd64", protocol.RoleAdmin, nil, nil)
	e.newAgent("a", "1.10.0")
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "1.0.0"})
	if code, pe := e.do("DELETE", "/v1/releases/1.0.0", e.tokens[protocol.RoleAdmin], nil, nil); code != 409 || !strings.Contains(pe.Error, "deployment") {
		t.Fatalf("remove needed by a run: %d %+v", code, pe)
	}
	e.must("DELETE", "/v1/releases/1.10.0", protocol.RoleAdmin, nil, nil)
	if _, err := os.Stat(filepath.Join(e.dir, "packs", "1.10.0")); !os.IsNotExist(err) {
		t.Fatalf("files of a removed release remain: %v", err)
	}
}

func TestSettingsValidation(t *testing.T) {
	e := newEnv(t)
	for key, val := range map[string]string{
		"version.linux/amd64": "9.9.9", "activation-upgrade.linux": "yes", "agents.inactive-after": "soon",
		"agents.poll-seconds": "0", "hooks.on-run-end": "echo 'unterminated", "nope": "1",
	} {
		if code, pe := e.do("PUT", "/v1/settings/"+key, e.tokens[protocol.RoleAdmin], protocol.SettingRequest{Value: val}, nil); code < 400 || pe.Error == "" {
			t.Errorf("%s=%s accepted: %d", key, val, code)
		}
	}
	var s protocol.Setting
	e.must("PUT", "/v1/settings/hooks.timeout", protocol.RoleAdmin, protocol.SettingRequest{Value: "5s"}, &s)
	if s.Value != "5s" || s.Default {
		t.Fatalf("%+v", s)
	}
}

func TestRestartKeepsRunsAndResumes(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	var agents []*simAgent
	for i := 0; i < 4; i++ {
		agents = append(agents, e.newAgent(fmt.Sprintf("h%d", i), "1.0.0"))
	}
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 2})
	e.schedule()
	first := upgradeOrder(agents[0].checkin())
	if first == nil {
		first = upgradeOrder(agents[1].checkin())
	}
	before := len(e.events())
	e.restart()
	if got := len(e.events()); got < before {
		t.Fatalf("events lost across restart: %d < %d", got, before)
	}
	r := e.run(run.ID)
	if r.Status != protocol.RunRunning || inProgress(r) != 2 {
		t.Fatalf("after restart: %+v", r)
	}
	for round := 0; round < 5; round++ {
		e.schedule()
		for _, a := range agents {
			if o := upgradeOrder(a.checkin()); o != nil {
				a.complete(*o)
			}
		}
	}
	e.schedule()
	if r := e.run(run.ID); r.Status != protocol.RunEndedOK || r.Counts[protocol.StateSucceeded] != 4 {
		t.Fatalf("run after restart: %+v", r)
	}
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "hook.out")
	script := filepath.Join(e.dir, "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$MOLT_RUN_ID $MOLT_RUN_STATUS $MOLT_DEPLOYMENT_ID $MOLT_DEPLOYMENT_STATUS $MOLT_AGENT\" >> "+out+"\n"), 0o755)
	e.must("PUT", "/v1/settings/hooks.on-deployment-end", protocol.RoleAdmin, protocol.SettingRequest{Value: script}, nil)
	e.must("PUT", "/v1/settings/hooks.on-run-end", protocol.RoleAdmin, protocol.SettingRequest{Value: script}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.s.hooks.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	run := e.createRun(protocol.RunRequest{Text: "hooked", Selection: protocol.Selection{All: true}, Target: "2.0.0"})
	e.schedule()
	o := upgradeOrder(a.checkin())
	a.complete(*o)
	e.schedule()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) == 2 {
			want := map[string]bool{
				fmt.Sprintf("%s  %s succeeded %s", run.ID, o.ID, a.id): true,
				fmt.Sprintf("%s ENDED_OK", run.ID):                     true,
			}
			for _, l := range lines {
				if !want[strings.TrimSpace(l)] {
					t.Fatalf("hook line %q, want one of %v", l, want)
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(out)
	t.Fatalf("hooks did not run twice: %q", b)
}

func TestHookFailureIsAnEvent(t *testing.T) {
	e := newEnv(t)
	j := hookJob{Name: "hooks.on-run-end", Command: "/nonexistent/hook", Timeout: time.Second, Run: 7}
	e.s.hooks.exec(context.Background(), j)
	j = hookJob{Name: "hooks.on-run-end", Command: "sleep 5", Timeout: 100 * time.Millisecond, Run: 7}
	start := time.Now()
	e.s.hooks.exec(context.Background(), j)
	if time.Since(start) > 4*time.Second {
		t.Fatal("the hook time limit was not applied")
	}
	n := 0
	for _, ev := range e.events() {
		if ev.ID == protocol.EvHookFailed {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d hook_failed events, want 2", n)
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string]string{
		`a b  c`:              "a|b|c",
		`sh -c 'echo "$X" a'`: `sh|-c|echo "$X" a`,
		`x "a \"b\" c" d\ e`:  `x|a "b" c|d e`,
		``:                    "",
	} {
		got, err := splitCommand(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`'a`, `"a`, `a\`} {
		if _, err := splitCommand(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMetricsAndEventsFollow(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("a", "1.0.0")
	a.checkin()
	code, _ := e.do("GET", "/metrics", "", nil, nil)
	if code != 401 {
		t.Fatalf("metrics without token: %d", code)
	}
	req, _ := http.NewRequest("GET", e.hs.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`molt_agents{version="1.0.0",platform="linux/amd64",status="online",upgrade_status="up_to_date"} 1`,
		`molt_deployments{state="waiting_for_host"} 0`,
		`molt_checkin_duration_seconds_count 2`,
		`molt_http_request_duration_seconds_bucket{route="POST /v1/agent/checkin",code="2xx",le="+Inf"} 2`,
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// follow returns as soon as an event is committed.
	evs := e.events()
	last := evs[len(evs)-1].Seq
	got := make(chan protocol.Events, 1)
	go func() {
		var out protocol.Events
		e.must("GET", fmt.Sprintf("/v1/events?follow=1&after_id=%d", last), protocol.RoleViewer, nil, &out)
		got <- out
	}()
	time.Sleep(50 * time.Millisecond)
	e.newAgent("b", "1.0.0")
	select {
	case out := <-got:
		if len(out.Events) != 1 || out.Events[0].ID != protocol.EvAgentEnrolled || out.Next != out.Events[0].Seq {
			t.Fatalf("follow: %+v", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not return on a new event")
	}
}

func TestPruneEvents(t *testing.T) {
	e := newEnv(t)
	e.newAgent("a", "1.0.0")
	n := len(e.events())
	e.clock.Add(91 * 24 * time.Hour)
	et, err := e.s.CreateEnrollToken(context.Background(), protocol.EnrollTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e.enroll = et.Secret
	e.newAgent("b", "1.0.0")
	e.s.pruneEvents(context.Background())
	evs := e.events()
	if len(evs) != 2 || evs[0].ID != protocol.EvEnrollTokenMade || evs[1].ID != protocol.EvAgentEnrolled || n < 2 {
		t.Fatalf("after pruning %d events older than 90 days: %+v", n, evs)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	e := newEnv(t)
	if code, pe := e.do("GET", "/v1/nope", "", nil, nil); code != 404 || pe.Code != protocol.CodeNotFound {
		t.Fatalf("%d %+v", code, pe)
	}
	if code, pe := e.do("PUT", "/v1/runs", "", nil, nil); code != 405 || pe.Code != protocol.CodeMethodNotAllowed {
		t.Fatalf("%d %+v", code, pe)
	}
}

func TestRevokeTokens(t *testing.T) {
	e := newEnv(t)
	var tc protocol.TokenCreated
	e.must("POST", "/v1/tokens", protocol.RoleAdmin, protocol.TokenRequest{Role: protocol.RoleViewer, Name: "ci"}, &tc)
	if code, _ := e.do("GET", "/v1/agents", tc.Secret, nil, nil); code != 200 {
		t.Fatalf("new token refused: %d", code)
	}
	e.must("DELETE", "/v1/tokens/"+tc.Token.ID, protocol.RoleAdmin, nil, nil)
	if code, _ := e.do("GET", "/v1/agents", tc.Secret, nil, nil); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}
	if code, pe := e.do("DELETE", "/v1/tokens/t-999", e.tokens[protocol.RoleAdmin], nil, nil); code != 404 || !strings.Contains(pe.Error, "t-999") {
		t.Errorf("unknown token: %d %+v", code, pe)
	}
	if code, pe := e.do("DELETE", "/v1/tokens/x", e.tokens[protocol.RoleAdmin], nil, nil); code != 404 || !strings.Contains(pe.Error, "ids look like t-3") {
		t.Errorf("malformed id: %d %+v", code, pe)
	}

	var ec protocol.EnrollTokenCreated
	e.must("POST", "/v1/enroll-tokens", protocol.RoleAdmin, protocol.EnrollTokenRequest{Uses: 5, ExpiresIn: 600}, &ec)
	e.must("DELETE", "/v1/enroll-tokens/"+ec.Token.ID, protocol.RoleAdmin, nil, nil)
	req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: ec.Secret, Name: "n", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Fingerprint: "f-revoked"}
	if code, pe := e.do("POST", "/v1/agent/enroll", "", req, nil); code != 401 || pe.Code != protocol.CodeEnrollToken {
		t.Errorf("enrollment with a revoked token: %d %+v", code, pe)
	}
	if code, pe := e.do("DELETE", "/v1/enroll-tokens/e-999", e.tokens[protocol.RoleAdmin], nil, nil); code != 404 || !strings.Contains(pe.Error, "enrollment token e-999") {
		t.Errorf("unknown enrollment token: %d %+v", code, pe)
	}
}
