package server

import (
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// Every setting the server knows is explained, and only those: the
// console builds its settings page from these descriptions.
func TestSettingsDescribed(t *testing.T) {
	for k := range settingDefaults {
		if strings.TrimSpace(settingDescriptions[k]) == "" {
			t.Errorf("setting %s has no description in settingDescriptions", k)
		}
	}
	for k := range settingDescriptions {
		if _, ok := settingDefaults[k]; !ok {
			t.Errorf("settingDescriptions describes %s, which is not a setting", k)
		}
	}
}

// GET /v1/settings carries each key's description and default, a set
// pattern key (version.*, window.*) its pattern's, and the patterns
// themselves; PUT and DELETE answer the same view.
func TestSettingsListingDescribes(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.must("PUT", "/v1/settings/version.linux/amd64", protocol.RoleAdmin, protocol.SettingRequest{Value: "1.0.0"}, nil)
	e.must("PUT", "/v1/settings/window.env=prod", protocol.RoleAdmin, protocol.SettingRequest{Value: "daily 22:00-23:00 UTC"}, nil)
	var put protocol.Setting
	e.must("PUT", "/v1/settings/agents.poll-seconds", protocol.RoleAdmin, protocol.SettingRequest{Value: "30"}, &put)
	if put.DefaultValue != "60" || put.Description != settingDescriptions["agents.poll-seconds"] || put.Default {
		t.Errorf("PUT answered %+v, want default_value 60, its description, not default", put)
	}

	var ss protocol.Settings
	e.must("GET", "/v1/settings", protocol.RoleViewer, nil, &ss)
	got := map[string]protocol.Setting{}
	for _, s := range ss.Settings {
		got[s.Key] = s
	}
	for k, def := range settingDefaults {
		s, ok := got[k]
		if !ok {
			t.Errorf("%s not listed", k)
			continue
		}
		if s.DefaultValue != def || s.Description != settingDescriptions[k] {
			t.Errorf("%s: default_value %q description %q, want %q and its description", k, s.DefaultValue, s.Description, def)
		}
	}
	for _, c := range []struct{ key, value, def, desc string }{
		{"version.linux/amd64", "1.0.0", "latest", "Version control for a platform"},
		{"window.env=prod", "daily 22:00-23:00 UTC", "", "A maintenance window"},
	} {
		s := got[c.key]
		if s.Value != c.value || s.DefaultValue != c.def || !strings.HasPrefix(s.Description, c.desc) || s.Default {
			t.Errorf("%s: %+v, want value %q, default_value %q, a description starting %q", c.key, s, c.value, c.def, c.desc)
		}
	}
	if len(ss.Patterns) != 2 || ss.Patterns[0].Pattern != "version.<goos>/<goarch>" || ss.Patterns[0].Default != "latest" || ss.Patterns[1].Pattern != "window.<label>=<value>" {
		t.Errorf("patterns %+v", ss.Patterns)
	}
	for _, p := range ss.Patterns {
		if p.Description == "" || p.Example == "" {
			t.Errorf("pattern %s without description or example", p.Pattern)
		}
	}

	var reset protocol.Setting
	e.must("DELETE", "/v1/settings/agents.poll-seconds", protocol.RoleAdmin, nil, &reset)
	if !reset.Default || reset.Value != "60" || reset.DefaultValue != "60" || reset.Description == "" {
		t.Errorf("DELETE answered %+v", reset)
	}
}
