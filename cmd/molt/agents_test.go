package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

// TestAgentsWorkloads: an agent checks in with its workloads at a real
// server (in-process, over HTTPS); molt agents list shows their health,
// molt agents show each one, --json exactly what the agent sent; a
// control character in what the agent says (a trial's reason) is refused
// by the server.
func TestAgentsWorkloads(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, hs, ca := inProcessServer(t, dir, server.Options{PollWait: 10 * time.Millisecond})
	tok, err := srv.CreateToken(ctx, protocol.RoleViewer, "test")
	if err != nil {
		t.Fatal(err)
	}
	et, err := srv.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, cred string, body, out any) {
		t.Helper()
		if code, pe := postTo(t, hs, path, cred, body, out); code != 200 {
			t.Fatalf("%s: %d %+v", path, code, pe)
		}
	}
	var en protocol.EnrollResponse
	post("/v1/agent/enroll", "", protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: "web-1",
		Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Supervised: true, Fingerprint: "fp"}, &en)
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	ws := []protocol.Workload{
		{Name: "exporter", Version: "1.5.0", State: protocol.WorkloadReady, Since: since},
		{Name: "sensor", Version: "1.4.0", State: protocol.WorkloadCrashed, Restarts: 4, LastExit: "exit status 2",
			Reason: "GET http://127.0.0.1:9200/health: connection refused", Since: since},
	}
	var cr protocol.CheckinResponse
	st := protocol.Status{ProtocolVersion: protocol.Version, Fingerprint: "fp",
		Name: "web-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Supervised: true, Workloads: ws,
		LastResult: &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "1.6.0", Previous: "1.5.0", Workload: "sensor",
			WorkloadLogs: "/opt/molt/logs/workload-sensor-1.6.0.log", Reason: "workload sensor crashed\x1b[2J", At: since}}
	// The server refuses a control character in what an agent says: it
	// never reaches the operator.
	if code, pe := postTo(t, hs, "/v1/agent/checkin", en.Credential, protocol.CheckinRequest{Status: st}, &cr); code != 400 || !strings.HasPrefix(pe.Error, "last_result.reason contains the control character U+001B") {
		t.Fatalf("check-in with an ESC: %d %+v", code, pe)
	}
	st.LastResult.Reason = "workload sensor crashed"
	post("/v1/agent/checkin", en.Credential, protocol.CheckinRequest{Status: st}, &cr)

	t.Setenv(envToken, tok.Secret)
	conn := []string{"--server", hs.URL, "--ca", ca}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runPack(t, append(args, conn...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if strings.ContainsRune(out, 0x1b) {
			t.Fatalf("%v printed an ESC:\n%q", args, out)
		}
		return out
	}

	if out := run("agents", "list"); !strings.Contains(out, "WORKLOADS") || !strings.Contains(out, "1/2 ready, sensor crashed") {
		t.Errorf("agents list:\n%s", out)
	}
	// Columns are compared with their padding squeezed to one space.
	out := strings.Join(strings.Fields(strings.ReplaceAll(run("agents", "show", en.AgentID), "\n", " | ")), " ")
	for _, want := range []string{
		"| Workload: sensor | version: 1.4.0 | state: crashed since ", " | restarts: 4 | last exit: exit status 2 | reason: GET http://127.0.0.1:9200/health: connection refused |",
		"| workload: sensor | reason: workload sensor crashed |",
		"| workload logs: /opt/molt/logs/workload-sensor-1.6.0.log |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}
	var list []protocol.Agent
	if err := json.Unmarshal([]byte(run("agents", "list", "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("agents list --json: %v %+v", err, list)
	}
	if d := cmp.Diff(ws, list[0].Workloads); d != "" {
		t.Errorf("agents list --json workloads (-sent +got):\n%s", d)
	}
	var one protocol.Agent
	if err := json.Unmarshal([]byte(run("agents", "show", en.AgentID, "--json")), &one); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ws, one.Workloads); d != "" || one.LastResult == nil || one.LastResult.Reason != "workload sensor crashed" {
		t.Errorf("agents show --json: %s %+v", d, one.LastResult)
	}
}

// postTo posts body as JSON and decodes a 200 answer into out; it returns
// the status and the error body.
func postTo(t *testing.T, hs *httptest.Server, path, cred string, body, out any) (int, protocol.Error) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", hs.URL+path, bytes.NewReader(b))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var pe protocol.Error
		_ = json.NewDecoder(resp.Body).Decode(&pe)
		return resp.StatusCode, pe
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
	return 200, protocol.Error{}
}

// TestAgentsRevokeAllow: a revoked agent is "revoked" in agents list and
// agents show alike, show says its host is refused and how to allow it,
// and agents allow lets the host enroll again.
func TestAgentsRevokeAllow(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, hs, ca := inProcessServer(t, dir, server.Options{PollWait: 10 * time.Millisecond})
	tok, err := srv.CreateToken(ctx, protocol.RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	et, err := srv.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Uses: 5})
	if err != nil {
		t.Fatal(err)
	}
	req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: "web-1",
		Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Supervised: true, Fingerprint: "fp"}
	var en protocol.EnrollResponse
	if code, pe := postTo(t, hs, "/v1/agent/enroll", "", req, &en); code != 200 {
		t.Fatalf("enroll: %d %+v", code, pe)
	}
	var cr protocol.CheckinResponse
	if code, pe := postTo(t, hs, "/v1/agent/checkin", en.Credential, protocol.CheckinRequest{Status: protocol.Status{ProtocolVersion: protocol.Version,
		Fingerprint: "fp", Name: "web-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Supervised: true}}, &cr); code != 200 {
		t.Fatalf("check-in: %d %+v", code, pe)
	}
	t.Setenv(envToken, tok.Secret)
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runPack(t, append(args, "--server", hs.URL, "--ca", ca)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	run("agents", "revoke", en.AgentID)
	if out := run("agents", "list"); !strings.Contains(out, "web-1 linux/amd64 1.5.0 revoked ") {
		t.Errorf("agents list:\n%s", out)
	}
	out := run("agents", "show", en.AgentID)
	for _, want := range []string{"Status: revoked ", "Revoked: yes; its host refused at enrollment until: molt agents allow " + en.AgentID} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}
	if code, pe := postTo(t, hs, "/v1/agent/enroll", "", req, &en); code != 403 || pe.Code != protocol.CodeHostRefused {
		t.Fatalf("the revoked host enrolls: %d %+v", code, pe)
	}
	if out := run("agents", "allow", en.AgentID); out != "the host of revoked agent "+en.AgentID+" (web-1) may enroll again" {
		t.Errorf("agents allow: %q", out)
	}
	if out := run("agents", "show", en.AgentID); !strings.Contains(out, "Status: revoked ") || !strings.Contains(out, "Revoked: yes; its host may enroll again") {
		t.Errorf("agents show after allow:\n%s", out)
	}
	if code, pe := postTo(t, hs, "/v1/agent/enroll", "", req, &en); code != 200 {
		t.Fatalf("the allowed host: %d %+v", code, pe)
	}
}
