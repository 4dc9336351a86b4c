package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// GET /v1/events selects by event ids, agent (id or name) and run, as the
// live stream does, within its window, and pages back with before_id.
func TestEventsSelect(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("alpha", "1.0.0")
	b := e.newAgent("beta", "1.0.0")
	for _, v := range []string{"61s", "62s", "63s"} {
		e.must("PUT", "/v1/settings/hooks.timeout", protocol.RoleAdmin, protocol.SettingRequest{Value: v}, nil)
	}
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "2.0.0", Scope: protocol.ScopeAll})
	all := e.events()

	get := func(query string) []protocol.Event {
		t.Helper()
		var evs protocol.Events
		e.must("GET", "/v1/events?"+query, protocol.RoleViewer, nil, &evs)
		return evs.Events
	}
	want := func(keep func(protocol.Event) bool) []int64 {
		var out []int64
		for _, ev := range all {
			if keep(ev) {
				out = append(out, ev.Seq)
			}
		}
		return out
	}
	seqs := func(evs []protocol.Event) []int64 {
		out := []int64{}
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return out
	}
	settings := want(func(ev protocol.Event) bool { return ev.ID == protocol.EvSettingChanged })
	if len(settings) != 3 {
		t.Fatalf("%d setting events, want 3", len(settings))
	}
	for _, c := range []struct {
		name, query string
		want        []int64
	}{
		{"one id", "id=1003", settings},
		{"two ids", "id=900,1003", want(func(ev protocol.Event) bool { return ev.ID == 900 || ev.ID == 1003 })},
		{"agent id", "agent=" + b.id, want(func(ev protocol.Event) bool { return ev.AgentID == b.id })},
		{"agent name", "agent=alpha", want(func(ev protocol.Event) bool { return ev.AgentID == a.id })},
		{"run", "run=" + run.ID, want(func(ev protocol.Event) bool { return ev.RunID == run.ID })},
		{"id and agent", "id=900&agent=alpha", want(func(ev protocol.Event) bool { return ev.ID == 900 && ev.AgentID == a.id })},
		{"newest of an id", "id=1003&limit=2", settings[1:]},
		{"older page of an id", fmt.Sprintf("id=1003&before_id=%d&limit=1", settings[2]), settings[1:2]},
		{"older page", fmt.Sprintf("before_id=%d&limit=2", all[4].Seq), []int64{all[2].Seq, all[3].Seq}},
		{"after_id with an id", fmt.Sprintf("id=1003&after_id=%d", settings[0]), settings[1:]},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := seqs(get(c.query))
			if len(c.want) == 0 {
				t.Fatal("the case selects nothing: a test of nothing")
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s: seqs %v, want %v", c.query, got, c.want)
			}
		})
	}
	for _, c := range []struct{ query, msg string }{
		{"id=99999", `id: "99999" is not an event id of the catalogue`},
		{"agent=nobody", "agent: no agent"},
		{"run=3", `run: "3" is not a run id like r-3`},
		{"before_id=x", `before_id: "x" is not an event sequence number`},
	} {
		code, pe := e.do("GET", "/v1/events?"+c.query, e.tokens[protocol.RoleViewer], nil, nil)
		if code != 400 || !strings.Contains(pe.Error, c.msg) {
			t.Errorf("%s: %d %q, want 400 saying %q", c.query, code, pe.Error, c.msg)
		}
	}
}
