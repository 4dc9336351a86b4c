package apiclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestRoutes pins every client method to its route in docs/api.md.
func TestRoutes(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			got += "?" + r.URL.RawQuery
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c, err := New(Options{Server: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		call func() error
		want string
	}{
		{func() error { _, err := c.ServerInfo(ctx); return err }, "GET /v1/server"},
		{func() error { _, err := c.CreateSigninLink(ctx); return err }, "POST /v1/signin-links"},
		{func() error { _, err := c.CreateToken(ctx, protocol.TokenRequest{Role: "viewer"}); return err }, "POST /v1/tokens"},
		{func() error { _, err := c.Tokens(ctx); return err }, "GET /v1/tokens"},
		{func() error { return c.RevokeToken(ctx, "tok/1") }, "DELETE /v1/tokens/tok%2F1"},
		{func() error { _, err := c.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{}); return err }, "POST /v1/enroll-tokens"},
		{func() error { _, err := c.EnrollTokens(ctx); return err }, "GET /v1/enroll-tokens"},
		{func() error { return c.RevokeEnrollToken(ctx, "e-1") }, "DELETE /v1/enroll-tokens/e-1"},
		{func() error {
			_, err := c.Agents(ctx, AgentFilter{Platform: "linux/amd64", Version: "1.0.0", Inactive: true})
			return err
		}, "GET /v1/agents?inactive=1&platform=linux%2Famd64&version=1.0.0"},
		{func() error {
			_, err := c.AgentPage(ctx, AgentQuery{AgentFilter: AgentFilter{Q: "web", Status: "online", Labels: map[string]string{"env": "prod", "a": "b"}}, Sort: "-version", Limit: 50, Offset: 100})
			return err
		}, "GET /v1/agents?label=a%3Db&label=env%3Dprod&limit=50&offset=100&q=web&sort=-version&status=online"},
		{func() error {
			_, err := c.AgentSummary(ctx, AgentFilter{Platform: "linux/amd64", UpgradeStatus: "upgrade_recommended"})
			return err
		}, "GET /v1/agents/summary?platform=linux%2Famd64&upgrade_status=upgrade_recommended"},
		{func() error { _, err := c.Agent(ctx, "a-1"); return err }, "GET /v1/agents/a-1"},
		{func() error { return c.RevokeAgent(ctx, "a-1") }, "POST /v1/agents/a-1/revoke"},
		{func() error { _, err := c.AllowAgent(ctx, "a-1"); return err }, "POST /v1/agents/a-1/allow"},
		{func() error { _, err := c.ImportRelease(ctx, strings.NewReader("tar")); return err }, "POST /v1/releases"},
		{func() error { _, err := c.Releases(ctx); return err }, "GET /v1/releases"},
		{func() error { return c.RemoveRelease(ctx, "1.5.0") }, "DELETE /v1/releases/1.5.0"},
		{func() error { _, err := c.Settings(ctx); return err }, "GET /v1/settings"},
		{func() error { _, err := c.Setting(ctx, "version.linux/amd64"); return err }, "GET /v1/settings/version.linux/amd64"},
		{func() error { _, err := c.SetSetting(ctx, "hooks.on-run-end", "x"); return err }, "PUT /v1/settings/hooks.on-run-end"},
		{func() error { _, err := c.ResetSetting(ctx, "hooks.on-run-end"); return err }, "DELETE /v1/settings/hooks.on-run-end"},
		{func() error { _, err := c.CreateRun(ctx, protocol.RunRequest{}); return err }, "POST /v1/runs"},
		{func() error { _, err := c.Runs(ctx); return err }, "GET /v1/runs"},
		{func() error { _, err := c.RunsIn(ctx, "paused"); return err }, "GET /v1/runs?status=paused"},
		{func() error { _, err := c.Run(ctx, "r-1"); return err }, "GET /v1/runs/r-1"},
		{func() error { _, err := c.RunAction(ctx, "r-1", "pause"); return err }, "POST /v1/runs/r-1/pause"},
		{func() error { _, err := c.RunAction(ctx, "r-1", "resume"); return err }, "POST /v1/runs/r-1/resume"},
		{func() error { _, err := c.RunAction(ctx, "r-1", "cancel"); return err }, "POST /v1/runs/r-1/cancel"},
		{func() error { _, err := c.RollbackRun(ctx, "r-1", protocol.RollbackRequest{DryRun: true}); return err }, "POST /v1/runs/r-1/rollback"},
		{func() error { _, err := c.RunReport(ctx, "r-1"); return err }, "GET /v1/runs/r-1/report"},
		{func() error {
			_, err := c.Deployments(ctx, DeploymentFilter{AgentID: "a-1", RunID: "r-1", State: "failed", Limit: 5})
			return err
		}, "GET /v1/deployments?agent=a-1&limit=5&run=r-1&state=failed"},
		{func() error { _, err := c.Deployment(ctx, "d-1"); return err }, "GET /v1/deployments/d-1"},
		{func() error { _, err := c.SkipDeployment(ctx, "d-1"); return err }, "POST /v1/deployments/d-1/skip"},
		{func() error { _, err := c.RetryDeployment(ctx, "d-1"); return err }, "POST /v1/deployments/d-1/retry"},
		{func() error { _, err := c.CancelDeployment(ctx, "d-1"); return err }, "POST /v1/deployments/d-1/cancel"},
		{func() error {
			_, err := c.Events(ctx, EventQuery{After: 7, Since: since, Limit: 10, Follow: true})
			return err
		}, "GET /v1/events?after_id=7&follow=1&limit=10&since=2026-01-02T03%3A04%3A05Z"},
		{func() error {
			_, err := c.Events(ctx, EventQuery{IDs: []int{264, 707}, Agent: "web-1", Run: "r-3"})
			return err
		}, "GET /v1/events?agent=web-1&id=264%2C707&run=r-3"},
	}
	for _, tt := range tests {
		got = ""
		if err := tt.call(); err != nil {
			t.Errorf("%s: %v", tt.want, err)
			continue
		}
		if got != tt.want {
			t.Errorf("request %q, want %q", got, tt.want)
		}
	}
	if _, err := c.RunAction(ctx, "r-1", "delete"); err == nil {
		t.Error("RunAction accepted an unknown action")
	}
}
