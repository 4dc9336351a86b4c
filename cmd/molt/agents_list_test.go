package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

// TestAgentsListFlags: molt agents list sends its filters, sort and page
// to a real server (in-process, over HTTPS) and shows what it answers;
// the total of a page goes to stderr, --json stays an array; a bad flag
// value is a usage error (exit 2) naming the flag, before any request.
func TestAgentsListFlags(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, hs, ca := inProcessServer(t, dir, server.Options{PollWait: 10 * time.Millisecond})
	tok, err := srv.CreateToken(ctx, protocol.RoleViewer, "test")
	if err != nil {
		t.Fatal(err)
	}
	et, err := srv.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Uses: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		name, platform, version string
		labels                  map[string]string
	}{
		{"web-1", "linux/amd64", "1.9.0", map[string]string{"env": "prod"}},
		{"web-2", "linux/amd64", "1.10.0", map[string]string{"env": "staging"}},
		{"db-1", "linux/arm64", "1.9.0", map[string]string{"env": "prod"}},
	} {
		req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: a.name, Hostname: a.name,
			Platform: a.platform, OSFamily: "linux", Version: a.version, Supervised: true, Labels: a.labels, Fingerprint: "fp-" + a.name}
		var en protocol.EnrollResponse
		if code, pe := postTo(t, hs, "/v1/agent/enroll", "", req, &en); code != 200 {
			t.Fatalf("enroll: %d %+v", code, pe)
		}
		var cr protocol.CheckinResponse
		st := protocol.Status{ProtocolVersion: protocol.Version, Fingerprint: req.Fingerprint, Name: a.name, Hostname: a.name,
			Platform: a.platform, OSFamily: "linux", Version: a.version, Supervised: true, Labels: a.labels}
		if code, pe := postTo(t, hs, "/v1/agent/checkin", en.Credential, protocol.CheckinRequest{Status: st}, &cr); code != 200 {
			t.Fatalf("check-in: %d %+v", code, pe)
		}
	}
	t.Setenv(envToken, tok.Secret)
	conn := []string{"--server", hs.URL, "--ca", ca}
	names := func(out string) []string {
		var ns []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ns = append(ns, strings.Fields(l)[1])
		}
		return ns
	}
	tests := []struct {
		args    []string
		want    []string
		wantErr string // on stderr
	}{
		{nil, []string{"db-1", "web-1", "web-2"}, ""},
		{[]string{"--search", "WEB"}, []string{"web-1", "web-2"}, ""},
		{[]string{"--label", "env=prod", "--platform", "linux/amd64"}, []string{"web-1"}, ""},
		{[]string{"--status", "online", "--upgrade-status", "up_to_date", "--os-family", "linux"}, []string{"db-1", "web-1", "web-2"}, ""},
		{[]string{"--sort", "version"}, []string{"db-1", "web-1", "web-2"}, ""},
		{[]string{"--sort", "-version"}, []string{"web-2", "db-1", "web-1"}, ""},
		{[]string{"--sort", "-name", "--limit", "2"}, []string{"web-2", "web-1"}, "agents 1-2 of 3 (next page: --offset 2)"},
		{[]string{"--limit", "2", "--offset", "2"}, []string{"web-2"}, "agents 3-3 of 3"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runPack(t, append(append([]string{"agents", "list"}, tt.args...), conn...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if d := cmp.Diff(tt.want, names(out)); d != "" {
				t.Errorf("agents (-want +got):\n%s", d)
			}
			if strings.TrimSpace(errOut) != tt.wantErr {
				t.Errorf("stderr %q, want %q", errOut, tt.wantErr)
			}
		})
	}
	out, errOut, code := runPack(t, append([]string{"agents", "list", "--json", "--limit", "1", "--sort", "name"}, conn...)...)
	var list []protocol.Agent
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0].Name != "db-1" || errOut != "" {
		t.Errorf("--json --limit 1: exit %d, %v, %q, stderr %q", code, err, out, errOut)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "up"}, `--status "up": give one of online, offline, inactive, revoked, busy`},
		{[]string{"--upgrade-status", "old"}, `--upgrade-status "old": give one of up_to_date, upgrade_recommended, upgrade_required, manual_upgrade_required`},
		{[]string{"--sort", "size"}, `--sort "size": give one of name, version, platform, os_family, status, upgrade_status, last_seen, supervisor_version, cluster`},
		{[]string{"--limit", "1001"}, "--limit 1001: give 1 to 1000 (0: every agent)"},
		{[]string{"--offset", "-1"}, "--offset -1: give 0 or more"},
		{[]string{"--label", "env"}, `--label: "env" is not KEY=VALUE`},
	} {
		_, errOut, code := runPack(t, append(append([]string{"agents", "list"}, tt.args...), conn...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d %q, want 2 with %q", tt.args, code, errOut, tt.want)
		}
	}
}

// TestFmtSelection: molt runs show says how a run chose its agents, a
// filter in its query form.
func TestFmtSelection(t *testing.T) {
	tests := []struct {
		sel  protocol.Selection
		want string
	}{
		{protocol.Selection{All: true}, "all agents"},
		{protocol.Selection{Labels: map[string]string{"env": "prod"}}, "label env=prod"},
		{protocol.Selection{AgentIDs: []string{"a1", "a2"}}, "agents a1, a2"},
		{protocol.Selection{Filter: &protocol.AgentFilter{Platform: "linux/amd64", Labels: map[string]string{"env": "prod"}}}, "filter platform=linux/amd64 label=env=prod"},
		{protocol.Selection{Filter: &protocol.AgentFilter{}}, "filter every active agent"},
	}
	for _, tt := range tests {
		if got := fmtSelection(tt.sel); got != tt.want {
			t.Errorf("fmtSelection(%+v) = %q, want %q", tt.sel, got, tt.want)
		}
	}
}
