package protocol

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// AgentBusy is the status filter for agents that report themselves busy
// (Agent.Busy); it is not a connection status: a busy agent is also
// online or offline.
const AgentBusy = "busy"

// AgentFilterStatuses are the values of AgentFilter.Status.
var AgentFilterStatuses = []string{AgentOnline, AgentOffline, AgentInactive, AgentRevoked, AgentBusy}

// UpgradeStatuses lists every upgrade status of an agent.
var UpgradeStatuses = []string{UpgradeUpToDate, UpgradeRecommended, UpgradeRequired, UpgradeManualRequired}

// AgentFilter chooses agents by what they are: the query of GET
// /v1/agents and GET /v1/agents/summary, and Selection.Filter of a run.
// Every field given must match; an empty filter matches every agent but
// the inactive ones.
type AgentFilter struct {
	// Q is a case-insensitive substring of the name, hostname, id or a
	// label value.
	Q             string `json:"q,omitempty"`
	Platform      string `json:"platform,omitempty"`
	OSFamily      string `json:"os_family,omitempty"`
	Version       string `json:"version,omitempty"`
	Cluster       string `json:"cluster,omitempty"`
	Status        string `json:"status,omitempty"`         // one of AgentFilterStatuses
	UpgradeStatus string `json:"upgrade_status,omitempty"` // one of UpgradeStatuses
	// Labels must all match (key = value).
	Labels map[string]string `json:"labels,omitempty"`
	// Inactive includes agents not seen for the inactivity period
	// (Status inactive does too).
	Inactive bool `json:"inactive,omitempty"`
	// IDs, when given, keeps only these agents (at most MaxFilterIDs):
	// a selection counted or narrowed like any other filter.
	IDs []string `json:"ids,omitempty"`
}

// MaxFilterIDs bounds AgentFilter.IDs (id=... in the query form).
const MaxFilterIDs = 1000

// AgentFilterParams are the query parameters of an AgentFilter; label
// (label=k=v) and id may repeat.
var AgentFilterParams = []string{"q", "platform", "os_family", "version", "cluster", "status", "upgrade_status", "label", "inactive", "id"}

// ParseAgentFilter reads a filter from its query form. It checks the
// form only (a parameter given twice, label without "=", inactive not a
// boolean); the server checks the values. Other parameters are left to
// the caller.
func ParseAgentFilter(q url.Values) (AgentFilter, error) {
	var f AgentFilter
	for _, p := range []struct {
		name string
		to   *string
	}{{"q", &f.Q}, {"platform", &f.Platform}, {"os_family", &f.OSFamily}, {"version", &f.Version}, {"cluster", &f.Cluster},
		{"status", &f.Status}, {"upgrade_status", &f.UpgradeStatus}} {
		v, err := single(q, p.name)
		if err != nil {
			return AgentFilter{}, err
		}
		*p.to = v
	}
	for _, kv := range q["label"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return AgentFilter{}, fmt.Errorf("label %q: give key=value, e.g. label=env=prod", kv)
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		if old, dup := f.Labels[k]; dup && old != v {
			return AgentFilter{}, fmt.Errorf("label %s is given twice (%q and %q): an agent has one value per label", k, old, v)
		}
		f.Labels[k] = v
	}
	if ids := q["id"]; len(ids) > 0 {
		if len(ids) > MaxFilterIDs {
			return AgentFilter{}, fmt.Errorf("id is given %d times: at most %d agents at once", len(ids), MaxFilterIDs)
		}
		f.IDs = slices.Clone(ids)
	}
	in, err := single(q, "inactive")
	if err != nil {
		return AgentFilter{}, err
	}
	switch in {
	case "", "0", "false":
	case "1", "true":
		f.Inactive = true
	default:
		return AgentFilter{}, fmt.Errorf("inactive %q: give 1 or 0", in)
	}
	return f, nil
}

// single returns the one value of query parameter name ("" if absent).
func single(q url.Values, name string) (string, error) {
	vs := q[name]
	if len(vs) > 1 {
		return "", fmt.Errorf("query parameter %s is given %d times: give it once", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// AddTo writes f into q in its query form (what ParseAgentFilter reads).
func (f AgentFilter) AddTo(q url.Values) {
	for _, p := range []struct{ name, v string }{{"q", f.Q}, {"platform", f.Platform}, {"os_family", f.OSFamily}, {"version", f.Version},
		{"cluster", f.Cluster}, {"status", f.Status}, {"upgrade_status", f.UpgradeStatus}} {
		if p.v != "" {
			q.Set(p.name, p.v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		q.Add("label", k+"="+f.Labels[k])
	}
	if f.Inactive {
		q.Set("inactive", "1")
	}
	for _, id := range f.IDs {
		q.Add("id", id)
	}
}

// Values is f in its query form.
func (f AgentFilter) Values() url.Values {
	q := url.Values{}
	f.AddTo(q)
	return q
}

// String says f as a person reads it: its query parameters, unescaped,
// in the order of AgentFilterParams ("every active agent" when empty).
func (f AgentFilter) String() string {
	q := f.Values()
	var parts []string
	for _, name := range AgentFilterParams {
		if name == "id" && len(f.IDs) > 3 {
			parts = append(parts, fmt.Sprintf("id=(%d agents)", len(f.IDs)))
			continue
		}
		for _, v := range q[name] {
			parts = append(parts, name+"="+v)
		}
	}
	if len(parts) == 0 {
		return "every active agent"
	}
	return strings.Join(parts, " ")
}

// AgentSortKeys are the keys GET /v1/agents sorts by (?sort=, "-"
// before one: descending); name is the default and every key's
// tie-break.
var AgentSortKeys = []string{"name", "version", "platform", "os_family", "status", "upgrade_status", "last_seen", "supervisor_version", "cluster"}

// MaxAgentPage bounds GET /v1/agents?limit=.
const MaxAgentPage = 1000

// AgentSummary is GET /v1/agents/summary: the agents a filter matches,
// counted.
type AgentSummary struct {
	Total int `json:"total"`
	// ByStatus counts every AgentFilterStatuses value (zeros included);
	// busy agents are also counted under their connection status.
	ByStatus map[string]int `json:"by_status"`
	// ByUpgradeStatus counts every UpgradeStatuses value (zeros included).
	ByUpgradeStatus map[string]int `json:"by_upgrade_status"`
	// Platforms are sorted by platform.
	Platforms []PlatformVersions `json:"platforms"`
}

// PlatformVersions is the version distribution of one platform.
type PlatformVersions struct {
	Platform string `json:"platform"`
	Agents   int    `json:"agents"`
	// Versions are newest first.
	Versions []VersionCount `json:"versions"`
}

// VersionCount is how many agents run a version.
type VersionCount struct {
	Version string `json:"version"`
	Agents  int    `json:"agents"`
}
