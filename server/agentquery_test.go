package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// queryFleet is a fleet with one agent of each kind the listing tells
// apart:
//
//	name    platform       version  status    upgrade    labels               cluster  supervisor
//	old-1   linux/amd64    1.0.0    inactive  recommend  env=prod             -        -
//	web-1   linux/amd64    1.0.0    online    recommend  env=prod role=web    c1       1.2.0
//	web-2   linux/amd64    2.0.0    online    up_to_date env=staging role=web c1       1.10.0  (busy)
//	db-1    linux/arm64    1.0.0    online    manual     env=prod role=db     c2       -       (unsupervised)
//	win-1   windows/amd64  1.10.0   online    up_to_date env=prod             c2       -       (hostname WINHOST-Alpha)
//	gone-1  linux/amd64    1.0.0    revoked   recommend  -                    -        -
//	off-1   linux/amd64    1.9.0    offline   recommend  -                    -        -       (never checked in)
//
// Release 2.0.0 has packs for linux/amd64 and linux/arm64. Agents check
// in 10 s apart in the order above (last_seen).
type queryFleet struct {
	e   *env
	ids map[string]string // name -> id
}

func newQueryFleet(t *testing.T) *queryFleet {
	t.Helper()
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64", "linux/arm64")
	f := &queryFleet{e: e, ids: map[string]string{}}
	add := func(name, platform, osFamily, version, cluster string, labels map[string]string, mod func(a *simAgent)) {
		a := e.newAgent(name, version, func(r *protocol.EnrollRequest) {
			r.Platform, r.OSFamily, r.Cluster, r.Labels = platform, osFamily, cluster, labels
			if name == "db-1" {
				r.Supervised = false
			}
		})
		if mod != nil {
			mod(a)
			a.checkin()
		}
		f.ids[name] = a.id
		e.clock.Add(10 * time.Second)
	}
	add("old-1", "linux/amd64", "linux", "1.0.0", "", map[string]string{"env": "prod"}, nil)
	e.clock.Add(800 * time.Hour) // past agents.inactive-after (720h)
	et, err := e.s.CreateEnrollToken(context.Background(), protocol.EnrollTokenRequest{Uses: 100})
	if err != nil {
		t.Fatal(err)
	}
	e.enroll = et.Secret // the first one expired meanwhile
	add("web-1", "linux/amd64", "linux", "1.0.0", "c1", map[string]string{"env": "prod", "role": "web"}, func(a *simAgent) { a.st.SupervisorVersion = "1.2.0" })
	add("web-2", "linux/amd64", "linux", "2.0.0", "c1", map[string]string{"env": "staging", "role": "web"}, func(a *simAgent) {
		a.st.SupervisorVersion, a.st.Busy = "1.10.0", true
	})
	add("db-1", "linux/arm64", "linux", "1.0.0", "c2", map[string]string{"env": "prod", "role": "db"}, nil)
	add("win-1", "windows/amd64", "windows", "1.10.0", "c2", map[string]string{"env": "prod"}, func(a *simAgent) { a.st.Hostname = "WINHOST-Alpha" })
	add("gone-1", "linux/amd64", "linux", "1.0.0", "", nil, nil)
	e.must("POST", "/v1/agents/"+f.ids["gone-1"]+"/revoke", protocol.RoleAdmin, nil, nil)
	f.ids["off-1"] = e.enrollOnly("off-1", "1.9.0").id
	return f
}

func (f *queryFleet) list(t *testing.T, query string) protocol.Agents {
	t.Helper()
	var out protocol.Agents
	f.e.must("GET", "/v1/agents?"+query, protocol.RoleViewer, nil, &out)
	return out
}

func agentNames(as []protocol.Agent) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func TestAgentListFilters(t *testing.T) {
	f := newQueryFleet(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"db-1", "gone-1", "off-1", "web-1", "web-2", "win-1"}},
		{"inactive=1", []string{"db-1", "gone-1", "off-1", "old-1", "web-1", "web-2", "win-1"}},
		{"inactive=true&platform=linux/amd64", []string{"gone-1", "off-1", "old-1", "web-1", "web-2"}},
		{"platform=linux/amd64", []string{"gone-1", "off-1", "web-1", "web-2"}},
		{"os_family=windows", []string{"win-1"}},
		{"version=1.0.0", []string{"db-1", "gone-1", "web-1"}},
		{"cluster=c2", []string{"db-1", "win-1"}},
		{"status=online", []string{"db-1", "web-1", "web-2", "win-1"}},
		{"status=offline", []string{"off-1"}},
		{"status=inactive", []string{"old-1"}},
		{"status=revoked", []string{"gone-1"}},
		{"status=busy", []string{"web-2"}},
		{"upgrade_status=up_to_date", []string{"web-2", "win-1"}},
		{"upgrade_status=upgrade_recommended", []string{"gone-1", "off-1", "web-1"}},
		{"upgrade_status=manual_upgrade_required", []string{"db-1"}},
		{"upgrade_status=upgrade_required", []string{}},
		{"label=env=prod", []string{"db-1", "web-1", "win-1"}},
		{"label=env=prod&label=role=web", []string{"web-1"}},
		{"label=env=prod&inactive=1", []string{"db-1", "old-1", "web-1", "win-1"}},
		{"q=WEB", []string{"web-1", "web-2"}},          // name, case ignored
		{"q=alpha", []string{"win-1"}},                 // hostname
		{"q=STAGING", []string{"web-2"}},               // a label value
		{"q=" + f.ids["db-1"], []string{"db-1"}},       // the id
		{"q=" + url.QueryEscape("é"), []string{}},      // not ASCII, no hit
		{"q=zzz", []string{}},                          // nothing
		{"q=1&platform=linux/arm64", []string{"db-1"}}, // with another filter
		{"platform=linux/amd64&version=1.0.0&status=online", []string{"web-1"}},
		{"q=&platform=&status=", []string{"db-1", "gone-1", "off-1", "web-1", "web-2", "win-1"}}, // empty is no filter
		{"id=" + f.ids["db-1"] + "&id=" + f.ids["web-2"], []string{"db-1", "web-2"}},             // these agents
		{"id=" + f.ids["db-1"] + "&id=" + f.ids["web-2"] + "&status=busy", []string{"web-2"}},    // and another filter
		{"id=" + f.ids["old-1"], []string{}},                                                     // inactive: with inactive=1 only
		{"id=" + f.ids["old-1"] + "&inactive=1", []string{"old-1"}},
		{"id=a-nosuch", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := f.list(t, tt.query)
			if d := gocmp.Diff(tt.want, agentNames(got.Agents)); d != "" {
				t.Errorf("GET /v1/agents?%s (-want +got):\n%s", tt.query, d)
			}
			if got.Total != len(tt.want) {
				t.Errorf("total %d, want %d", got.Total, len(tt.want))
			}
		})
	}
}

func TestAgentListSort(t *testing.T) {
	f := newQueryFleet(t)
	tests := []struct {
		sort string
		want []string
	}{
		{"name", []string{"db-1", "gone-1", "off-1", "web-1", "web-2", "win-1"}},
		{"-name", []string{"win-1", "web-2", "web-1", "off-1", "gone-1", "db-1"}},
		// By semver: 1.9.0 before 1.10.0, which text would not do.
		{"version", []string{"db-1", "gone-1", "web-1", "off-1", "win-1", "web-2"}},
		// Descending by the key only: agents of one version by name.
		{"-version", []string{"web-2", "win-1", "off-1", "db-1", "gone-1", "web-1"}},
		{"platform", []string{"gone-1", "off-1", "web-1", "web-2", "db-1", "win-1"}},
		{"-platform", []string{"win-1", "db-1", "gone-1", "off-1", "web-1", "web-2"}},
		{"os_family", []string{"db-1", "gone-1", "off-1", "web-1", "web-2", "win-1"}},
		{"-os_family", []string{"win-1", "db-1", "gone-1", "off-1", "web-1", "web-2"}},
		{"status", []string{"off-1", "db-1", "web-1", "web-2", "win-1", "gone-1"}},
		{"upgrade_status", []string{"db-1", "web-2", "win-1", "gone-1", "off-1", "web-1"}},
		// Never seen first, then in check-in order.
		{"last_seen", []string{"off-1", "web-1", "web-2", "db-1", "win-1", "gone-1"}},
		{"-last_seen", []string{"gone-1", "win-1", "db-1", "web-2", "web-1", "off-1"}},
		{"supervisor_version", []string{"db-1", "gone-1", "off-1", "win-1", "web-1", "web-2"}},
		{"-supervisor_version", []string{"web-2", "web-1", "db-1", "gone-1", "off-1", "win-1"}},
		{"cluster", []string{"gone-1", "off-1", "web-1", "web-2", "db-1", "win-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.sort, func(t *testing.T) {
			got := f.list(t, "sort="+tt.sort)
			if d := gocmp.Diff(tt.want, agentNames(got.Agents)); d != "" {
				t.Errorf("sort=%s (-want +got):\n%s", tt.sort, d)
			}
		})
	}
	// Every key the server knows is tested here.
	for _, k := range protocol.AgentSortKeys {
		if !slices.ContainsFunc(tests, func(tt struct {
			sort string
			want []string
		}) bool {
			return tt.sort == k
		}) {
			t.Errorf("sort key %s has no test", k)
		}
	}
}

func TestAgentListPaging(t *testing.T) {
	f := newQueryFleet(t)
	all := []string{"db-1", "gone-1", "off-1", "web-1", "web-2", "win-1"}
	tests := []struct {
		query string
		want  []string
		total int
	}{
		{"limit=2", all[:2], 6},
		{"limit=2&offset=2", all[2:4], 6},
		{"limit=2&offset=5", all[5:], 6},
		{"limit=2&offset=6", []string{}, 6},
		{"limit=1000&offset=100", []string{}, 6},
		{"offset=4", all[4:], 6}, // no limit: every match from offset
		{"limit=1&sort=-name", []string{"win-1"}, 6},
		{"limit=2&offset=1&platform=linux/amd64&sort=-last_seen", []string{"web-2", "web-1"}, 4},
		{"limit=50&status=busy", []string{"web-2"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := f.list(t, tt.query)
			if d := gocmp.Diff(tt.want, agentNames(got.Agents)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if got.Total != tt.total {
				t.Errorf("total %d, want %d", got.Total, tt.total)
			}
		})
	}
	// A page shows the whole agent, as the list without paging does.
	page, whole := f.list(t, "limit=1&offset=3"), f.list(t, "")
	if d := gocmp.Diff(whole.Agents[3], page.Agents[0]); d != "" {
		t.Errorf("a paged agent differs from the listed one (-list +page):\n%s", d)
	}
}

func TestAgentListBadQuery(t *testing.T) {
	f := newQueryFleet(t)
	tests := []struct {
		path string
		want string // in the message
	}{
		{"/v1/agents?sort=size", `sort "size": sort by one of name, version, platform, os_family, status, upgrade_status, last_seen, supervisor_version, cluster`},
		{"/v1/agents?sort=-", `sort "": sort by one of`},
		{"/v1/agents?limit=0", `limit "0": give a whole number from 1 to 1000`},
		{"/v1/agents?limit=1001", `limit "1001": give a whole number from 1 to 1000`},
		{"/v1/agents?limit=ten", `limit "ten": give a whole number from 1 to 1000`},
		{"/v1/agents?offset=-1", `offset "-1": give a whole number from 0`},
		{"/v1/agents?limit=5&limit=6", "query parameter limit is given 2 times"},
		{"/v1/agents?status=up", `status "up": give one of online, offline, inactive, revoked, busy`},
		{"/v1/agents?upgrade_status=old", `upgrade_status "old": give one of up_to_date, upgrade_recommended, upgrade_required, manual_upgrade_required`},
		{"/v1/agents?label=env", `label "env": give key=value, e.g. label=env=prod`},
		{"/v1/agents?label==prod", `label "=prod": give key=value`},
		{"/v1/agents?label=env=a&label=env=b", `label env is given twice`},
		{"/v1/agents?label=" + url.QueryEscape("bad key=x"), `label key "bad key"`},
		{"/v1/agents?inactive=yes", `inactive "yes": give 1 or 0`},
		{"/v1/agents?platform=a&platform=b", "query parameter platform is given 2 times: give it once"},
		{"/v1/agents?q=" + strings.Repeat("x", 300), "q is longer than 256 bytes"},
		{"/v1/agents?stauts=online", `unknown query parameter "stauts" (known: q, platform, os_family, version, cluster, status, upgrade_status, label, inactive, id, sort, limit, offset)`},
		{"/v1/agents/summary?sort=name", `unknown query parameter "sort" (known: q, platform, os_family, version, cluster, status, upgrade_status, label, inactive, id)`},
		{"/v1/agents/summary?id=" + strings.Repeat("a", 300), "id is longer than 256 bytes"},
		{"/v1/agents/summary?" + strings.Repeat("id=a-1&", 1001), "id is given 1001 times: at most 1000 agents at once"},
		{"/v1/agents/summary?status=gone", `status "gone": give one of`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, pe := f.e.do("GET", tt.path, f.e.tokens[protocol.RoleViewer], nil, nil)
			if code != 400 || pe.Code != protocol.CodeBadRequest || !strings.Contains(pe.Error, tt.want) {
				t.Errorf("%d %s %q, want 400 bad_request with %q", code, pe.Code, pe.Error, tt.want)
			}
		})
	}
}

func TestAgentSummary(t *testing.T) {
	f := newQueryFleet(t)
	status := func(online, offline, inactive, revoked, busy int) map[string]int {
		return map[string]int{"online": online, "offline": offline, "inactive": inactive, "revoked": revoked, "busy": busy}
	}
	upgrade := func(upToDate, recommended, required, manual int) map[string]int {
		return map[string]int{"up_to_date": upToDate, "upgrade_recommended": recommended, "upgrade_required": required, "manual_upgrade_required": manual}
	}
	vc := func(v string, n int) protocol.VersionCount { return protocol.VersionCount{Version: v, Agents: n} }
	tests := []struct {
		query string
		want  protocol.AgentSummary
	}{
		{"", protocol.AgentSummary{Total: 6, ByStatus: status(4, 1, 0, 1, 1), ByUpgradeStatus: upgrade(2, 3, 0, 1),
			Platforms: []protocol.PlatformVersions{
				{Platform: "linux/amd64", Agents: 4, Versions: []protocol.VersionCount{vc("2.0.0", 1), vc("1.9.0", 1), vc("1.0.0", 2)}},
				{Platform: "linux/arm64", Agents: 1, Versions: []protocol.VersionCount{vc("1.0.0", 1)}},
				{Platform: "windows/amd64", Agents: 1, Versions: []protocol.VersionCount{vc("1.10.0", 1)}},
			}}},
		{"inactive=1&platform=linux/amd64", protocol.AgentSummary{Total: 5, ByStatus: status(2, 1, 1, 1, 1), ByUpgradeStatus: upgrade(1, 4, 0, 0),
			Platforms: []protocol.PlatformVersions{
				{Platform: "linux/amd64", Agents: 5, Versions: []protocol.VersionCount{vc("2.0.0", 1), vc("1.9.0", 1), vc("1.0.0", 3)}},
			}}},
		{"label=env=prod", protocol.AgentSummary{Total: 3, ByStatus: status(3, 0, 0, 0, 0), ByUpgradeStatus: upgrade(1, 1, 0, 1),
			Platforms: []protocol.PlatformVersions{
				{Platform: "linux/amd64", Agents: 1, Versions: []protocol.VersionCount{vc("1.0.0", 1)}},
				{Platform: "linux/arm64", Agents: 1, Versions: []protocol.VersionCount{vc("1.0.0", 1)}},
				{Platform: "windows/amd64", Agents: 1, Versions: []protocol.VersionCount{vc("1.10.0", 1)}},
			}}},
		{"q=nobody", protocol.AgentSummary{Total: 0, ByStatus: status(0, 0, 0, 0, 0), ByUpgradeStatus: upgrade(0, 0, 0, 0), Platforms: []protocol.PlatformVersions{}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got protocol.AgentSummary
			f.e.must("GET", "/v1/agents/summary?"+tt.query, protocol.RoleViewer, nil, &got)
			if d := gocmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestRunByFilter: a run selected by filter moves exactly the agents the
// listing shows for it (revoked ones aside), in a dry run and for real,
// and keeps the filter as its selection.
func TestRunByFilter(t *testing.T) {
	f := newQueryFleet(t)
	depAgents := func(runID string) []string {
		var ds protocol.Deployments
		f.e.must("GET", "/v1/deployments?run="+runID, protocol.RoleViewer, nil, &ds)
		out := []string{}
		for _, d := range ds.Deployments {
			out = append(out, d.AgentName)
		}
		slices.Sort(out)
		return out
	}
	excluded := func(r protocol.Run) []string {
		out := []string{}
		for _, x := range r.Excluded {
			out = append(out, x.AgentName+": "+x.Reason)
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name     string
		filter   protocol.AgentFilter
		todo     []string
		excluded []string
	}{
		{"platform", protocol.AgentFilter{Platform: "linux/amd64"}, []string{"off-1", "web-1"}, []string{"web-2: already at target 2.0.0"}},
		{"label", protocol.AgentFilter{Labels: map[string]string{"env": "prod"}}, []string{"web-1"},
			[]string{"db-1: not supervised (scope supervised): upgrade it by hand or use scope all", "win-1: no pack for platform windows/amd64"}},
		{"inactive too", protocol.AgentFilter{Version: "1.0.0", Inactive: true}, []string{"old-1", "web-1"},
			[]string{"db-1: not supervised (scope supervised): upgrade it by hand or use scope all"}},
		{"search and status", protocol.AgentFilter{Q: "WEB", Status: protocol.AgentOnline, UpgradeStatus: protocol.UpgradeRecommended}, []string{"web-1"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := protocol.RunRequest{Target: "latest", Selection: protocol.Selection{Filter: &tt.filter}, DryRun: true}
			var dry protocol.Run
			f.e.must("POST", "/v1/runs", protocol.RoleOperator, req, &dry)
			if dry.Total != len(tt.todo) {
				t.Errorf("dry run: %d agents, want %d (%v)", dry.Total, len(tt.todo), tt.todo)
			}
			if d := gocmp.Diff(tt.excluded, excluded(dry)); d != "" {
				t.Errorf("dry run excluded (-want +got):\n%s", d)
			}
			req.DryRun = false
			run := f.e.createRun(req)
			if d := gocmp.Diff(tt.todo, depAgents(run.ID)); d != "" {
				t.Errorf("deployments (-want +got):\n%s", d)
			}
			if d := gocmp.Diff(tt.excluded, excluded(run)); d != "" {
				t.Errorf("excluded (-want +got):\n%s", d)
			}
			if got := f.e.run(run.ID).Selection; got.Filter == nil || !gocmp.Equal(*got.Filter, tt.filter) {
				t.Errorf("stored selection %+v, want filter %+v", got, tt.filter)
			}
			// Free the agents for the next case.
			f.e.must("POST", "/v1/runs/"+run.ID+"/cancel", protocol.RoleOperator, nil, nil)
		})
	}
}

func TestRunByFilterRefused(t *testing.T) {
	f := newQueryFleet(t)
	tests := []struct {
		name string
		sel  protocol.Selection
		want string
	}{
		{"two ways", protocol.Selection{All: true, Filter: &protocol.AgentFilter{}}, "selection: give exactly one of agent_ids, labels, all or filter"},
		{"bad status", protocol.Selection{Filter: &protocol.AgentFilter{Status: "up"}}, `selection.filter: status "up": give one of`},
		{"bad label", protocol.Selection{Filter: &protocol.AgentFilter{Labels: map[string]string{"a b": "c"}}}, `selection.filter: label key "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, pe := f.e.do("POST", "/v1/runs", f.e.tokens[protocol.RoleOperator], protocol.RunRequest{Target: "latest", Selection: tt.sel, DryRun: true}, nil)
			if code != 400 || !strings.Contains(pe.Error, tt.want) {
				t.Errorf("%d %q, want 400 with %q", code, pe.Error, tt.want)
			}
		})
	}
	// Nothing matches: refused as for labels.
	code, pe := f.e.do("POST", "/v1/runs", f.e.tokens[protocol.RoleOperator], protocol.RunRequest{Target: "latest", Selection: protocol.Selection{Filter: &protocol.AgentFilter{Q: "nobody"}}}, nil)
	if code != 409 || !strings.Contains(pe.Error, "no agent matches the selection") {
		t.Errorf("a filter matching nothing: %d %q", code, pe.Error)
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		s, sub string
		want   bool
	}{
		{"Web-1", "web", true},
		{"web-1", "WEB", false}, // sub is lower case already
		{"WINHOST-Alpha", "alpha", true},
		{"abc", "", true},
		{"ab", "abc", false},
		{"aab", "ab", true},
		{"ÉCOLE-1", "école", true}, // not ASCII: folded by strings.ToLower
		{"école", "x", false},
	}
	for _, tt := range tests {
		if got := containsFold(tt.s, tt.sub); got != tt.want {
			t.Errorf("containsFold(%q, %q) = %v, want %v", tt.s, tt.sub, got, tt.want)
		}
	}
}

// TestPage: a page taken by the heap or by selection is what a full sort
// gives, for every size and place of the page, with ties on the key and
// descending; input in order and in reverse too (the pivot's worst
// cases).
func TestPage(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 1000} {
		rows := make([]agentRow, n)
		for i := range rows {
			rows[i] = agentRow{name: fmt.Sprintf("a-%d", rnd.IntN(50)), id: fmt.Sprintf("%05d", i), key: fmt.Sprint(rnd.IntN(5)), n: int64(rnd.IntN(3))}
		}
		for _, desc := range []bool{false, true} {
			compare := compareRows(desc)
			want := slices.Clone(rows)
			slices.SortFunc(want, compare)
			reversed := slices.Clone(want)
			slices.Reverse(reversed)
			for _, in := range [][]agentRow{rows, want, reversed} {
				for _, b := range [][2]int{{0, 1}, {0, 2}, {0, 10}, {0, 50}, {0, n}, {1, 3}, {n / 2, n/2 + 50}, {n / 3, n}, {n - 1, n}, {n / 4, n / 4}} {
					lo, hi := min(b[0], n), min(b[1], n)
					got := page(slices.Clone(in), lo, hi, compare)
					if !slices.EqualFunc(want[lo:hi], got, func(x, y agentRow) bool { return x.id == y.id }) {
						t.Errorf("n %d [%d:%d] desc %v: the page differs from the full sort's", n, lo, hi, desc)
					}
				}
			}
		}
	}
}
