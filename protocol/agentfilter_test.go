package protocol

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAgentFilterQuery: a filter written in its query form reads back
// the same, and String says it in the order of AgentFilterParams.
func TestAgentFilterQuery(t *testing.T) {
	tests := []struct {
		f     AgentFilter
		query string
		text  string
	}{
		{AgentFilter{}, "", "every active agent"},
		{AgentFilter{Q: "web 1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Cluster: "c1", Status: "busy", UpgradeStatus: UpgradeRecommended,
			Labels: map[string]string{"env": "prod", "a": "x=y"}, Inactive: true},
			"cluster=c1&inactive=1&label=a%3Dx%3Dy&label=env%3Dprod&os_family=linux&platform=linux%2Famd64&q=web+1&status=busy&upgrade_status=upgrade_recommended&version=1.5.0",
			"q=web 1 platform=linux/amd64 os_family=linux version=1.5.0 cluster=c1 status=busy upgrade_status=upgrade_recommended label=a=x=y label=env=prod inactive=1"},
		{AgentFilter{Labels: map[string]string{"env": ""}}, "label=env%3D", "label=env="},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := tt.f.Values().Encode(); got != tt.query {
				t.Errorf("query %q, want %q", got, tt.query)
			}
			if got := tt.f.String(); got != tt.text {
				t.Errorf("String %q, want %q", got, tt.text)
			}
			q, _ := url.ParseQuery(tt.query)
			back, err := ParseAgentFilter(q)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.f, back); d != "" {
				t.Errorf("read back (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseAgentFilterRefuses(t *testing.T) {
	tests := []struct{ query, want string }{
		{"label=env", `label "env": give key=value, e.g. label=env=prod`},
		{"label==x", `label "=x": give key=value`},
		{"label=env=a&label=env=b", `label env is given twice ("a" and "b")`},
		{"status=a&status=b", "query parameter status is given 2 times: give it once"},
		{"inactive=yes", `inactive "yes": give 1 or 0`},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		if _, err := ParseAgentFilter(q); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.query, err, tt.want)
		}
	}
	// The same label twice with the same value is one label.
	q, _ := url.ParseQuery("label=env=a&label=env=a&inactive=false")
	if f, err := ParseAgentFilter(q); err != nil || f.Labels["env"] != "a" || f.Inactive {
		t.Errorf("%+v %v", f, err)
	}
}
