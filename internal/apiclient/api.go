package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// esc escapes one path segment (ids and versions are checked by the
// server; escaping keeps a stray "/" or "?" from changing the route).
func esc(s string) string { return url.PathEscape(s) }

// escKey escapes a setting key, whose "/" (version.linux/amd64) is part
// of the route: each part is escaped on its own.
func escKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// ServerInfo returns the server's version and the caller's role.
func (c *Client) ServerInfo(ctx context.Context) (protocol.ServerInfo, error) {
	return do[protocol.ServerInfo](ctx, c, Request{Method: http.MethodGet, Path: "/v1/server", Role: protocol.RoleViewer})
}

// ----- tokens -----

// CreateToken makes an API token; its secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req protocol.TokenRequest) (protocol.TokenCreated, error) {
	return do[protocol.TokenCreated](ctx, c, Request{Method: http.MethodPost, Path: "/v1/tokens", Body: req, Role: protocol.RoleAdmin})
}

// Tokens lists API tokens.
func (c *Client) Tokens(ctx context.Context) ([]protocol.Token, error) {
	out, err := do[protocol.Tokens](ctx, c, Request{Method: http.MethodGet, Path: "/v1/tokens", Role: protocol.RoleAdmin})
	return out.Tokens, err
}

// RevokeToken revokes an API token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/tokens/" + esc(id), Role: protocol.RoleAdmin}, nil)
}

// CreateEnrollToken makes an enrollment token.
func (c *Client) CreateEnrollToken(ctx context.Context, req protocol.EnrollTokenRequest) (protocol.EnrollTokenCreated, error) {
	return do[protocol.EnrollTokenCreated](ctx, c, Request{Method: http.MethodPost, Path: "/v1/enroll-tokens", Body: req, Role: protocol.RoleAdmin})
}

// EnrollTokens lists enrollment tokens.
func (c *Client) EnrollTokens(ctx context.Context) ([]protocol.EnrollToken, error) {
	out, err := do[protocol.EnrollTokens](ctx, c, Request{Method: http.MethodGet, Path: "/v1/enroll-tokens", Role: protocol.RoleAdmin})
	return out.Tokens, err
}

// RevokeEnrollToken revokes an enrollment token.
func (c *Client) RevokeEnrollToken(ctx context.Context, id string) error {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/enroll-tokens/" + esc(id), Role: protocol.RoleAdmin}, nil)
}

// ----- agents -----

// AgentFilter narrows an agent listing (and selects a run's agents).
type AgentFilter = protocol.AgentFilter

// AgentQuery is a filter with the order and the page of a listing.
type AgentQuery struct {
	AgentFilter
	// Sort is a key of GET /v1/agents?sort= (name when empty), "-" before
	// it descending.
	Sort string
	// Limit is the page size (0: every match, from Offset).
	Limit, Offset int
}

// Agents lists every agent f matches, by name.
func (c *Client) Agents(ctx context.Context, f AgentFilter) ([]protocol.Agent, error) {
	out, err := c.AgentPage(ctx, AgentQuery{AgentFilter: f})
	return out.Agents, err
}

// AgentPage lists one page of the agents q matches, with the total
// before paging.
func (c *Client) AgentPage(ctx context.Context, q AgentQuery) (protocol.Agents, error) {
	v := q.Values()
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	return do[protocol.Agents](ctx, c, Request{Method: http.MethodGet, Path: "/v1/agents", Query: v, Role: protocol.RoleViewer})
}

// AgentSummary counts the agents f matches by status, upgrade status and
// version per platform.
func (c *Client) AgentSummary(ctx context.Context, f AgentFilter) (protocol.AgentSummary, error) {
	return do[protocol.AgentSummary](ctx, c, Request{Method: http.MethodGet, Path: "/v1/agents/summary", Query: f.Values(), Role: protocol.RoleViewer})
}

// Agent shows one agent.
func (c *Client) Agent(ctx context.Context, id string) (protocol.Agent, error) {
	return do[protocol.Agent](ctx, c, Request{Method: http.MethodGet, Path: "/v1/agents/" + esc(id), Role: protocol.RoleViewer})
}

// RevokeAgent revokes an agent's credential.
func (c *Client) RevokeAgent(ctx context.Context, id string) error {
	return c.Do(ctx, Request{Method: http.MethodPost, Path: "/v1/agents/" + esc(id) + "/revoke", Role: protocol.RoleAdmin}, nil)
}

// AllowAgent lets the host of a revoked agent enroll again.
func (c *Client) AllowAgent(ctx context.Context, id string) (protocol.Agent, error) {
	return do[protocol.Agent](ctx, c, Request{Method: http.MethodPost, Path: "/v1/agents/" + esc(id) + "/allow", Role: protocol.RoleAdmin})
}

// ----- releases -----

// ImportRelease uploads a pack file; the server verifies it.
func (c *Client) ImportRelease(ctx context.Context, pack io.Reader) (protocol.Release, error) {
	return do[protocol.Release](ctx, c, Request{Method: http.MethodPost, Path: "/v1/releases", Raw: pack,
		ContentType: "application/octet-stream", Role: protocol.RoleAdmin, NoTimeout: true})
}

// Releases lists releases, newest first.
func (c *Client) Releases(ctx context.Context) ([]protocol.Release, error) {
	out, err := do[protocol.Releases](ctx, c, Request{Method: http.MethodGet, Path: "/v1/releases", Role: protocol.RoleViewer})
	return out.Releases, err
}

// RemoveRelease removes a release.
func (c *Client) RemoveRelease(ctx context.Context, version string) error {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/releases/" + esc(version), Role: protocol.RoleAdmin}, nil)
}

// QuarantineRelease keeps a release from platforms (none: all of the
// release's); it answers the release with its quarantines.
func (c *Client) QuarantineRelease(ctx context.Context, version string, req protocol.QuarantineRequest) (protocol.Release, error) {
	return do[protocol.Release](ctx, c, Request{Method: http.MethodPost, Path: "/v1/releases/" + esc(version) + "/quarantine", Body: req, Role: protocol.RoleOperator})
}

// UnquarantineRelease lifts a release's quarantine on platforms (none:
// every platform it is quarantined for).
func (c *Client) UnquarantineRelease(ctx context.Context, version string, platforms []string) (protocol.Release, error) {
	return do[protocol.Release](ctx, c, Request{Method: http.MethodPost, Path: "/v1/releases/" + esc(version) + "/unquarantine",
		Body: protocol.QuarantineRequest{Platforms: platforms}, Role: protocol.RoleOperator})
}

// ----- settings -----

// Settings lists every setting with its value.
func (c *Client) Settings(ctx context.Context) ([]protocol.Setting, error) {
	out, err := do[protocol.Settings](ctx, c, Request{Method: http.MethodGet, Path: "/v1/settings", Role: protocol.RoleViewer})
	return out.Settings, err
}

// Setting reads one setting.
func (c *Client) Setting(ctx context.Context, key string) (protocol.Setting, error) {
	return do[protocol.Setting](ctx, c, Request{Method: http.MethodGet, Path: "/v1/settings/" + escKey(key), Role: protocol.RoleViewer})
}

// SetSetting changes one setting.
func (c *Client) SetSetting(ctx context.Context, key, value string) (protocol.Setting, error) {
	return do[protocol.Setting](ctx, c, Request{Method: http.MethodPut, Path: "/v1/settings/" + escKey(key),
		Body: protocol.SettingRequest{Value: value}, Role: protocol.RoleAdmin})
}

// ResetSetting puts a setting back to its default.
func (c *Client) ResetSetting(ctx context.Context, key string) (protocol.Setting, error) {
	return do[protocol.Setting](ctx, c, Request{Method: http.MethodDelete, Path: "/v1/settings/" + escKey(key), Role: protocol.RoleAdmin})
}

// ----- runs -----

// CreateRun starts a run (or, with DryRun, returns its plan only).
func (c *Client) CreateRun(ctx context.Context, req protocol.RunRequest) (protocol.Run, error) {
	return do[protocol.Run](ctx, c, Request{Method: http.MethodPost, Path: "/v1/runs", Body: req, Role: protocol.RoleOperator})
}

// Runs lists runs, newest first.
func (c *Client) Runs(ctx context.Context) ([]protocol.Run, error) { return c.RunsIn(ctx, "") }

// RunsIn lists runs, newest first; status, when set, keeps only runs in it.
func (c *Client) RunsIn(ctx context.Context, status string) ([]protocol.Run, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	out, err := do[protocol.Runs](ctx, c, Request{Method: http.MethodGet, Path: "/v1/runs", Query: q, Role: protocol.RoleViewer})
	return out.Runs, err
}

// Run shows one run with its counts.
func (c *Client) Run(ctx context.Context, id string) (protocol.Run, error) {
	return do[protocol.Run](ctx, c, Request{Method: http.MethodGet, Path: "/v1/runs/" + esc(id), Role: protocol.RoleViewer})
}

// RunAction is pause, resume or cancel.
func (c *Client) RunAction(ctx context.Context, id, action string) (protocol.Run, error) {
	switch action {
	case "pause", "resume", "cancel", "promote":
	default:
		return protocol.Run{}, fmt.Errorf("unknown run action %q", action)
	}
	return do[protocol.Run](ctx, c, Request{Method: http.MethodPost, Path: "/v1/runs/" + esc(id) + "/" + action, Role: protocol.RoleOperator})
}

// RollbackRun plans (req.DryRun) or starts a run that brings the agents
// run id moved back to the versions they came from.
func (c *Client) RollbackRun(ctx context.Context, id string, req protocol.RollbackRequest) (protocol.Run, error) {
	return do[protocol.Run](ctx, c, Request{Method: http.MethodPost, Path: "/v1/runs/" + esc(id) + "/rollback", Body: req, Role: protocol.RoleOperator})
}

// RunReport is the run and every deployment with its end.
func (c *Client) RunReport(ctx context.Context, id string) (protocol.RunReport, error) {
	return do[protocol.RunReport](ctx, c, Request{Method: http.MethodGet, Path: "/v1/runs/" + esc(id) + "/report", Role: protocol.RoleViewer})
}

// ----- deployments -----

// DeploymentFilter narrows the history.
type DeploymentFilter struct {
	AgentID, RunID string
	// State keeps only deployments in this state.
	State string
	Limit int
}

// Deployments lists deployments, newest first (the upgrade history).
func (c *Client) Deployments(ctx context.Context, f DeploymentFilter) ([]protocol.Deployment, error) {
	q := url.Values{}
	if f.AgentID != "" {
		q.Set("agent", f.AgentID)
	}
	if f.RunID != "" {
		q.Set("run", f.RunID)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	out, err := do[protocol.Deployments](ctx, c, Request{Method: http.MethodGet, Path: "/v1/deployments", Query: q, Role: protocol.RoleViewer})
	return out.Deployments, err
}

// Deployment is one deployment with its DEPLOY report.
func (c *Client) Deployment(ctx context.Context, id string) (protocol.DeploymentReport, error) {
	return do[protocol.DeploymentReport](ctx, c, Request{Method: http.MethodGet, Path: "/v1/deployments/" + esc(id), Role: protocol.RoleViewer})
}

// SkipDeployment skips a deployment that has not started on its agent.
func (c *Client) SkipDeployment(ctx context.Context, id string) (protocol.Deployment, error) {
	return do[protocol.Deployment](ctx, c, Request{Method: http.MethodPost, Path: "/v1/deployments/" + esc(id) + "/skip", Role: protocol.RoleOperator})
}

// RetryDeployment queues a new deployment in place of a stuck or failed
// one and returns the new one.
func (c *Client) RetryDeployment(ctx context.Context, id string) (protocol.Deployment, error) {
	return do[protocol.Deployment](ctx, c, Request{Method: http.MethodPost, Path: "/v1/deployments/" + esc(id) + "/retry", Role: protocol.RoleOperator})
}

// CancelDeployment ends a stuck deployment.
func (c *Client) CancelDeployment(ctx context.Context, id string) (protocol.Deployment, error) {
	return do[protocol.Deployment](ctx, c, Request{Method: http.MethodPost, Path: "/v1/deployments/" + esc(id) + "/cancel", Role: protocol.RoleOperator})
}

// ----- events -----

// EventQuery pages through the event log.
type EventQuery struct {
	// After is the Seq to continue after (0: from the start or Since).
	After int64
	Since time.Time
	Limit int
	// Follow makes the server hold the request until an event after
	// After arrives (or about 30 s pass with none).
	Follow bool
	// IDs, Agent (an id or unique name) and Run (r-N) keep only the
	// events matching every one given.
	IDs   []int
	Agent string
	Run   string
}

// Events returns events after q.After, oldest first.
func (c *Client) Events(ctx context.Context, q EventQuery) (protocol.Events, error) {
	v := url.Values{}
	if q.After > 0 {
		v.Set("after_id", strconv.FormatInt(q.After, 10))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	if len(q.IDs) > 0 {
		ids := make([]string, len(q.IDs))
		for i, id := range q.IDs {
			ids[i] = strconv.Itoa(id)
		}
		v.Set("id", strings.Join(ids, ","))
	}
	if q.Agent != "" {
		v.Set("agent", q.Agent)
	}
	if q.Run != "" {
		v.Set("run", q.Run)
	}
	return do[protocol.Events](ctx, c, Request{Method: http.MethodGet, Path: "/v1/events", Query: v, Role: protocol.RoleViewer, NoTimeout: q.Follow})
}

// do sends r and decodes the answer into a new T.
func do[T any](ctx context.Context, c *Client, r Request) (T, error) {
	var out T
	err := c.Do(ctx, r, &out)
	return out, err
}
