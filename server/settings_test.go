package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// agents.offline-after below twice the long-poll interval would show
// healthy idle agents offline between check-ins: refused with 400 that
// names the setting, the interval and the minimum, whichever of the two
// settings is changed (or reset) to get there.
func TestOfflineAfterBelowPollIntervalRefused(t *testing.T) {
	e := newEnv(t)
	e.s.opt.PollWait = 0 // the interval comes from agents.poll-seconds, as without --poll-wait
	admin := e.tokens[protocol.RoleAdmin]
	str := func(v string) *string { return &v }
	for _, step := range []struct {
		key   string
		value *string // nil: reset to the default
		code  int
		want  []string
	}{
		{"agents.offline-after", str("30s"), 400, []string{"agents.offline-after: 30s is below the minimum 2m0s", "long-poll interval is 1m0s (agents.poll-seconds 60)", "set 2m0s or more"}},
		{"agents.offline-after", str("119s"), 400, []string{"agents.offline-after: 1m59s is below the minimum 2m0s"}},
		{"agents.offline-after", str("2m"), 200, nil},
		{"agents.poll-seconds", str("90"), 400, []string{"agents.poll-seconds: 90 makes the long-poll interval 1m30s", "agents.offline-after (2m0s)", "3m0s"}},
		{"agents.poll-seconds", str("30"), 200, nil},
		{"agents.offline-after", str("1m"), 200, nil},
		{"agents.poll-seconds", nil, 400, []string{"agents.poll-seconds: 60 makes the long-poll interval 1m0s", "agents.offline-after (1m0s)", "2m0s"}},
		{"agents.offline-after", nil, 200, nil},
		{"agents.poll-seconds", nil, 200, nil},
	} {
		method, body := "PUT", any(protocol.SettingRequest{})
		if step.value == nil {
			method, body = "DELETE", nil
		} else {
			body = protocol.SettingRequest{Value: *step.value}
		}
		before := e.s.setting(t.Context(), step.key)
		code, pe := e.do(method, "/v1/settings/"+step.key, admin, body, nil)
		if code != step.code {
			t.Fatalf("%s %s %v: %d %q, want %d", method, step.key, step.value, code, pe.Error, step.code)
		}
		for _, w := range step.want {
			if !strings.Contains(pe.Error, w) {
				t.Errorf("%s %s: %q does not say %q", method, step.key, pe.Error, w)
			}
		}
		if code == http.StatusBadRequest && e.s.setting(t.Context(), step.key) != before {
			t.Errorf("%s %s: refused but changed to %s", method, step.key, e.s.setting(t.Context(), step.key))
		}
	}
}

// With --poll-wait (tests, benchmarks) that wait is the interval.
func TestOfflineAfterMinimumFollowsPollWait(t *testing.T) {
	e := newEnv(t)
	e.s.opt.PollWait = 2 * time.Second
	admin := e.tokens[protocol.RoleAdmin]
	if code, pe := e.do("PUT", "/v1/settings/agents.offline-after", admin, protocol.SettingRequest{Value: "3s"}, nil); code != 400 || !strings.Contains(pe.Error, "the server's --poll-wait") {
		t.Errorf("3s with a 2s poll wait: %d %q", code, pe.Error)
	}
	if code, pe := e.do("PUT", "/v1/settings/agents.offline-after", admin, protocol.SettingRequest{Value: "4s"}, nil); code != 200 {
		t.Errorf("4s with a 2s poll wait: %d %q", code, pe.Error)
	}
}
