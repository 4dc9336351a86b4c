package server

import (
	"cmp"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
)

// The agents listing (GET /v1/agents, /v1/agents/summary) answers a
// console paging through 50,000 agents while every check-in waits for
// s.mu: the filter runs over the in-memory records under s.mu and copies
// out only the sort key of each match; the sort runs outside it; the
// full view (agentView, which looks up targets, floors and policies) is
// built for the page alone.

// agentQuery is a parsed GET /v1/agents.
type agentQuery struct {
	f      protocol.AgentFilter
	sort   string
	desc   bool
	limit  int // 0: every match
	offset int
}

// parseAgentQuery reads and checks the query of GET /v1/agents (paging
// true: sort, limit and offset too) or /v1/agents/summary.
func parseAgentQuery(q url.Values, paging bool) (agentQuery, error) {
	known := slices.Clone(protocol.AgentFilterParams)
	if paging {
		known = append(known, "sort", "limit", "offset")
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(known, k) {
			return agentQuery{}, badRequest("unknown query parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	f, err := protocol.ParseAgentFilter(q)
	if err != nil {
		return agentQuery{}, badRequest("%v", err)
	}
	if err := checkAgentFilter(f); err != nil {
		return agentQuery{}, err
	}
	aq := agentQuery{f: f, sort: "name"}
	if !paging {
		return aq, nil
	}
	if v, err := oneParam(q, "sort"); err != nil {
		return agentQuery{}, err
	} else if v != "" {
		aq.sort = v
	}
	if k, ok := strings.CutPrefix(aq.sort, "-"); ok {
		aq.sort, aq.desc = k, true
	}
	if !slices.Contains(protocol.AgentSortKeys, aq.sort) {
		return agentQuery{}, badRequest("sort %q: sort by one of %s (a leading - sorts descending, e.g. -last_seen)", aq.sort, strings.Join(protocol.AgentSortKeys, ", "))
	}
	if aq.limit, err = intParam(q, "limit", 1, protocol.MaxAgentPage); err != nil {
		return agentQuery{}, err
	}
	if aq.offset, err = intParam(q, "offset", 0, 1<<31-1); err != nil {
		return agentQuery{}, err
	}
	return aq, nil
}

// oneParam is the single value of a query parameter ("" when absent).
func oneParam(q url.Values, name string) (string, error) {
	if vs := q[name]; len(vs) > 1 {
		return "", badRequest("query parameter %s is given %d times: give it once", name, len(vs))
	}
	return q.Get(name), nil
}

// intParam is an integer query parameter from lo to hi; 0 when absent.
func intParam(q url.Values, name string, lo, hi int) (int, error) {
	v, err := oneParam(q, name)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s %q: give a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// checkAgentFilter checks the values of a filter, in a query or in a
// run's selection.
func checkAgentFilter(f protocol.AgentFilter) error {
	for _, t := range []struct{ name, v string }{{"q", f.Q}, {"platform", f.Platform}, {"os_family", f.OSFamily}, {"version", f.Version}, {"cluster", f.Cluster}} {
		if err := checkString(t.name, t.v, false); err != nil {
			return err
		}
	}
	if f.Status != "" && !slices.Contains(protocol.AgentFilterStatuses, f.Status) {
		return badRequest("status %q: give one of %s", f.Status, strings.Join(protocol.AgentFilterStatuses, ", "))
	}
	if f.UpgradeStatus != "" && !slices.Contains(protocol.UpgradeStatuses, f.UpgradeStatus) {
		return badRequest("upgrade_status %q: give one of %s", f.UpgradeStatus, strings.Join(protocol.UpgradeStatuses, ", "))
	}
	if len(f.IDs) > protocol.MaxFilterIDs {
		return badRequest("ids: %d agents; at most %d at once", len(f.IDs), protocol.MaxFilterIDs)
	}
	for _, id := range f.IDs {
		if err := checkString("id", id, true); err != nil {
			return err
		}
	}
	return checkLabels(f.Labels)
}

// agentMatcher is a filter ready for one pass over the fleet under s.mu:
// the settings it needs read once, upgrade statuses memoized.
type agentMatcher struct {
	f                           protocol.AgentFilter
	q                           string          // f.Q folded to lower case
	ids                         map[string]bool // f.IDs; nil: any agent
	inactive                    bool            // inactive agents match too
	upgrades                    bool            // the caller wants upgrade statuses (they cost a lookup)
	now                         time.Time
	offlineAfter, inactiveAfter time.Duration
	ups                         upgradeStatuses
}

// newAgentMatcher prepares f; upgrades says whether match must return
// the upgrade status of a match even when f does not test it. Call with
// s.mu held.
func (s *Server) newAgentMatcher(f protocol.AgentFilter, upgrades bool) *agentMatcher {
	m := &agentMatcher{f: f, q: strings.ToLower(f.Q), inactive: f.Inactive || f.Status == protocol.AgentInactive, upgrades: upgrades || f.UpgradeStatus != "", now: s.clock.Now(),
		offlineAfter: s.durationSetting("agents.offline-after"), inactiveAfter: s.durationSetting("agents.inactive-after"), ups: upgradeStatuses{}}
	if len(f.IDs) > 0 {
		m.ids = make(map[string]bool, len(f.IDs))
		for _, id := range f.IDs {
			m.ids[id] = true
		}
	}
	return m
}

// match reports whether a matches, and its status and upgrade status
// (known only when it matches; "" unless m.upgrades). Cheap tests first: most agents of a big
// fleet fail on a string compare. Call with s.mu held.
func (m *agentMatcher) match(s *Server, a *agentRec) (status, upgrade string, ok bool) {
	st, f := &a.St, &m.f
	if m.ids != nil && !m.ids[a.ID] {
		return "", "", false
	}
	if (f.Platform != "" && st.Platform != f.Platform) || (f.Version != "" && st.Version != f.Version) ||
		(f.OSFamily != "" && st.OSFamily != f.OSFamily) || (f.Cluster != "" && st.Cluster != f.Cluster) ||
		(len(f.Labels) > 0 && !labelsMatch(st.Labels, f.Labels)) {
		return "", "", false
	}
	// Inactive by its last check-in, revoked or not: an agent long gone
	// is listed with inactive=1 only.
	conn := connStatusAt(a, m.now, m.offlineAfter, m.inactiveAfter)
	if conn == protocol.AgentInactive && !m.inactive {
		return "", "", false
	}
	status = conn
	if a.Revoked {
		status = protocol.AgentRevoked
	}
	switch f.Status {
	case "", status:
	case protocol.AgentBusy:
		if a.Revoked || !st.Busy {
			return "", "", false
		}
	default:
		return "", "", false
	}
	if m.upgrades {
		upgrade = m.ups.of(s, a)
		if f.UpgradeStatus != "" && upgrade != f.UpgradeStatus {
			return "", "", false
		}
	}
	if m.q != "" && !m.search(a) {
		return "", "", false
	}
	return status, upgrade, true
}

// search reports whether the text search hits a's name, hostname, id or
// a label value.
func (m *agentMatcher) search(a *agentRec) bool {
	if containsFold(a.St.Name, m.q) || containsFold(a.St.Hostname, m.q) || containsFold(a.ID, m.q) {
		return true
	}
	for _, v := range a.St.Labels {
		if containsFold(v, m.q) {
			return true
		}
	}
	return false
}

// containsFold reports whether lower (already lower case) is in s, case
// ignored. ASCII without allocating, as names mostly are; anything else
// through strings.ToLower.
func containsFold(s, lower string) bool {
	n := len(lower)
	if n == 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return strings.Contains(strings.ToLower(s), lower)
		}
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// filterAgents returns the agents f matches that are not revoked, by id:
// the agents of a run selected by filter. Call with s.mu held.
func (s *Server) filterAgents(f protocol.AgentFilter) []*agentRec {
	m := s.newAgentMatcher(f, false)
	var out []*agentRec
	for _, a := range s.scanAgents() {
		if _, _, ok := m.match(s, a); ok && !a.Revoked {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y *agentRec) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// scanAgents returns every agent in memory order, for a pass over the
// fleet: in a map's random order nearly every record is a cache miss, in
// memory order the prefetcher has them ready (a pass over 50,000 agents
// took a third of the time). Agents are only ever added to s.agents (a
// revoked one stays), so a list as long as the map holds the same
// agents. Call with s.mu held.
func (s *Server) scanAgents() []*agentRec {
	if len(s.agentScan) != len(s.agents) {
		s.agentScan = slices.AppendSeq(s.agentScan[:0], maps.Values(s.agents))
		slices.SortFunc(s.agentScan, func(x, y *agentRec) int {
			return cmp.Compare(uintptr(unsafe.Pointer(x)), uintptr(unsafe.Pointer(y)))
		})
	}
	return s.agentScan
}

// agentRows keeps the rows of a listing between requests: at 50,000
// agents they are megabytes, which the next page's request would
// allocate (and the collector scan) again.
var agentRows = sync.Pool{New: func() any { return new([]agentRow) }}

// agentRow is a match with its sort key, copied out under s.mu.
type agentRow struct {
	a        *agentRec
	name, id string
	key      string // the sort key as text
	n        int64  // or as a number (last_seen, a version's rank)
}

// sortKey copies a's key for sort key k.
func sortKey(k string, a *agentRec, status, upgrade string) (string, int64) {
	switch k {
	case "version":
		return a.St.Version, 0
	case "platform":
		return a.St.Platform, 0
	case "os_family":
		return a.St.OSFamily, 0
	case "status":
		return status, 0
	case "upgrade_status":
		return upgrade, 0
	case "last_seen":
		if a.LastSeen.IsZero() { // never checked in: before any time (UnixNano of year 1 overflows)
			return "", math.MinInt64
		}
		return "", a.LastSeen.UnixNano()
	case "supervisor_version":
		return a.St.SupervisorVersion, 0
	case "cluster":
		return a.St.Cluster, 0
	}
	return a.St.Name, 0
}

// rankVersions replaces the version keys of rows by their rank in
// version order: a fleet runs few versions, so each is compared a few
// times, not n log n times.
func rankVersions(rows []agentRow) {
	rank := map[string]int64{}
	for _, r := range rows {
		rank[r.key] = 0
	}
	vs := slices.SortedFunc(maps.Keys(rank), semver.Compare)
	for i, v := range vs {
		rank[v] = int64(i)
	}
	for i := range rows {
		rows[i].n = rank[rows[i].key]
		rows[i].key = ""
	}
}

// compareRows orders rows by key (desc: descending), then by name and
// id ascending, so equal keys read alphabetically either way.
func compareRows(desc bool) func(x, y agentRow) int {
	return func(x, y agentRow) int {
		c := cmp.Compare(x.n, y.n)
		if c == 0 {
			c = strings.Compare(x.key, y.key)
		}
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c = strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		return strings.Compare(x.id, y.id)
	}
}

// page returns rows[lo:hi] as they are once rows are sorted, without
// sorting all of them where that can be avoided: a first page keeps the
// best hi in a heap (n log hi); a page deep in the list selects its
// bounds (quickselect, about 2n compares), then sorts itself. Every row
// is distinct (ids are), so the order is total. rows is reordered.
func page(rows []agentRow, lo, hi int, compare func(x, y agentRow) int) []agentRow {
	switch {
	case lo == 0 && hi == len(rows):
		slices.SortFunc(rows, compare)
		return rows
	case hi < len(rows)/4:
		return heapFirst(rows, hi, compare)[lo:hi]
	}
	nth(rows, lo, compare)
	if hi < len(rows) {
		nth(rows[lo:], hi-lo, compare)
	}
	slices.SortFunc(rows[lo:hi], compare)
	return rows[lo:hi]
}

// heapFirst puts the first k rows (0 < k <= len(rows)) in order at the
// front of rows and returns them.
func heapFirst(rows []agentRow, k int, compare func(x, y agentRow) int) []agentRow {
	// rows[:k] is a max-heap of the best k so far: its root is the worst.
	h := rows[:k]
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			if r := l + 1; r < k && compare(h[r], h[l]) > 0 {
				l = r
			}
			if compare(h[l], h[i]) <= 0 {
				return
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := k; i < len(rows); i++ {
		if compare(rows[i], h[0]) < 0 {
			h[0], rows[i] = rows[i], h[0]
			down(0)
		}
	}
	slices.SortFunc(h, compare)
	return h
}

// nth reorders rows so that rows[k] is the row a sort puts there, with
// the rows before it before it and the rows after it after it (k <
// len(rows)).
func nth(rows []agentRow, k int, compare func(x, y agentRow) int) {
	lo, hi := 0, len(rows)-1
	for lo < hi {
		// The median of three as the pivot, moved to hi: rows often
		// come nearly in order (enrolled in name order, by address).
		mid := lo + (hi-lo)/2
		if compare(rows[mid], rows[lo]) < 0 {
			rows[mid], rows[lo] = rows[lo], rows[mid]
		}
		if compare(rows[hi], rows[lo]) < 0 {
			rows[hi], rows[lo] = rows[lo], rows[hi]
		}
		if compare(rows[mid], rows[hi]) < 0 {
			rows[mid], rows[hi] = rows[hi], rows[mid]
		}
		p := lo
		for i := lo; i < hi; i++ {
			if compare(rows[i], rows[hi]) < 0 {
				rows[i], rows[p] = rows[p], rows[i]
				p++
			}
		}
		rows[p], rows[hi] = rows[hi], rows[p]
		switch {
		case k == p:
			return
		case k < p:
			hi = p - 1
		default:
			lo = p + 1
		}
	}
}

func (s *Server) handleAgentList(w http.ResponseWriter, r *http.Request, _ caller) error {
	aq, err := parseAgentQuery(r.URL.Query(), true)
	if err != nil {
		return err
	}
	refused, err := s.refusedHosts(r.Context())
	if err != nil {
		return err
	}
	rowsp := agentRows.Get().(*[]agentRow)
	defer func() {
		clear(*rowsp) // keep no agent alive from the pool
		*rowsp = (*rowsp)[:0]
		agentRows.Put(rowsp)
	}()
	s.mu.Lock()
	rows := *rowsp
	if cap(rows) < len(s.agents) {
		rows = make([]agentRow, 0, len(s.agents)) // once, rather than growing
	}
	m := s.newAgentMatcher(aq.f, aq.sort == "upgrade_status")
	for _, a := range s.scanAgents() {
		status, upgrade, ok := m.match(s, a)
		if !ok {
			continue
		}
		key, n := sortKey(aq.sort, a, status, upgrade)
		rows = append(rows, agentRow{a: a, name: a.St.Name, id: a.ID, key: key, n: n})
	}
	s.mu.Unlock()
	*rowsp = rows
	out := protocol.Agents{Agents: []protocol.Agent{}, Total: len(rows)}
	if aq.sort == "version" || aq.sort == "supervisor_version" {
		rankVersions(rows)
	}
	end := len(rows)
	if aq.limit > 0 {
		end = min(aq.offset+aq.limit, len(rows))
	}
	if aq.offset < end {
		page := page(rows, aq.offset, end, compareRows(aq.desc))
		out.Agents = make([]protocol.Agent, len(page))
		s.mu.Lock()
		now := s.clock.Now()
		for i, row := range page {
			out.Agents[i] = s.agentView(row.a, now, refused[row.id])
		}
		s.mu.Unlock()
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) handleAgentSummary(w http.ResponseWriter, r *http.Request, _ caller) error {
	aq, err := parseAgentQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	sum := protocol.AgentSummary{ByStatus: map[string]int{}, ByUpgradeStatus: map[string]int{}, Platforms: []protocol.PlatformVersions{}}
	for _, st := range protocol.AgentFilterStatuses {
		sum.ByStatus[st] = 0
	}
	for _, st := range protocol.UpgradeStatuses {
		sum.ByUpgradeStatus[st] = 0
	}
	type platformKey struct{ platform, version string }
	counts := map[platformKey]int{}
	s.mu.Lock()
	m := s.newAgentMatcher(aq.f, true)
	for _, a := range s.scanAgents() {
		status, upgrade, ok := m.match(s, a)
		if !ok {
			continue
		}
		sum.Total++
		sum.ByStatus[status]++
		if a.St.Busy && !a.Revoked {
			sum.ByStatus[protocol.AgentBusy]++
		}
		sum.ByUpgradeStatus[upgrade]++
		counts[platformKey{a.St.Platform, a.St.Version}]++
	}
	s.mu.Unlock()
	byPlatform := map[string]*protocol.PlatformVersions{}
	for k, n := range counts {
		p := byPlatform[k.platform]
		if p == nil {
			p = &protocol.PlatformVersions{Platform: k.platform}
			byPlatform[k.platform] = p
		}
		p.Agents += n
		p.Versions = append(p.Versions, protocol.VersionCount{Version: k.version, Agents: n})
	}
	for _, name := range slices.Sorted(maps.Keys(byPlatform)) {
		p := byPlatform[name]
		slices.SortFunc(p.Versions, func(x, y protocol.VersionCount) int { return semver.Compare(y.Version, x.Version) })
		sum.Platforms = append(sum.Platforms, *p)
	}
	writeJSON(w, 200, sum)
	return nil
}

// selectionSize says how many ways a selection chooses agents (a valid
// one: exactly 1).
func selectionSize(sel protocol.Selection) int {
	n := 0
	for _, given := range []bool{len(sel.AgentIDs) > 0, len(sel.Labels) > 0, sel.All, sel.Filter != nil} {
		if given {
			n++
		}
	}
	return n
}

// checkSelectionFilter checks a run's Selection.Filter, named as its
// JSON path.
func checkSelectionFilter(f *protocol.AgentFilter) error {
	if f == nil {
		return nil
	}
	if err := checkAgentFilter(*f); err != nil {
		// The message of an apiError is what the client reads.
		return badRequest("selection.filter: %v", err)
	}
	return nil
}
