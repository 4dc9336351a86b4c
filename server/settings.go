package server

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// settingDefaults are the keys that exist without a pattern and their
// defaults. Keys with a pattern (version.<platform>,
// activation-upgrade.<family>) are checked by checkSetting.
var settingDefaults = map[string]string{
	"hooks.on-deployment-end":         "",
	"hooks.on-run-end":                "",
	"hooks.timeout":                   "60s",
	"agents.inactive-after":           "720h",
	"agents.offline-after":            "3m",
	"agents.poll-seconds":             "60",
	"agents.min-auto-upgrade-version": "",
	"agents.min-free-disk-mb":         "200",
	"repair.enabled":                  "true",
	"repair.max-concurrent":           "10",
	"deployments.stuck-after":         "30m",
	"deployments.timeout":             "2h",
	"metrics.public":                  "false",
	"events.keep":                     "2160h",
	"activation-upgrade.linux":        "false",
	"activation-upgrade.windows":      "false",
	"activation-upgrade.unix":         "false",
	"releases.quarantine-after":       "2",
	"sessions.lifetime":               "12h",
}

var platformKeyRe = regexp.MustCompile(`^version\.[a-z0-9]+/[a-z0-9]+$`)

// checkSetting validates key=value and returns a clear error.
func checkSetting(key, value string) error {
	if len(value) > 4096 {
		return badRequest("%s: the value is longer than 4096 bytes", key)
	}
	if platformKeyRe.MatchString(key) {
		if value == "latest" || value == "none" || pack.ValidVersion(value) {
			return nil
		}
		return badRequest("%s: %q is not latest, none or a version", key, value)
	}
	if windowKeyRe.MatchString(key) {
		return checkWindowSetting(key, value)
	}
	if _, ok := settingDefaults[key]; !ok {
		return notFound("unknown setting %q (known: %s, version.<goos>/<goarch>, window.<label>=<value>)", key, strings.Join(knownKeys(), ", "))
	}
	switch key {
	case "hooks.on-deployment-end", "hooks.on-run-end":
		if value == "" {
			return nil
		}
		if _, err := splitCommand(value); err != nil {
			return badRequest("%s: %v", key, err)
		}
	case "deployments.timeout":
		if value == "off" {
			return nil
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return badRequest("%s: %q is not off or a positive duration like 2h", key, value)
		}
	case "hooks.timeout", "agents.inactive-after", "agents.offline-after", "deployments.stuck-after", "events.keep":
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return badRequest("%s: %q is not a positive duration like 90s, 30m or 720h", key, value)
		}
	case "sessions.lifetime":
		return checkSessionLifetime(value)
	case "agents.poll-seconds":
		return checkInt(key, value, 1, protocol.MaxPollSeconds)
	case "repair.max-concurrent":
		return checkInt(key, value, 1, 10000)
	case "releases.quarantine-after":
		return checkInt(key, value, 0, 1000000)
	case "agents.min-free-disk-mb":
		return checkInt(key, value, 0, 1<<20)
	case "agents.min-auto-upgrade-version":
		if value != "" && !pack.ValidVersion(value) {
			return badRequest("%s: %q is not a version", key, value)
		}
	case "repair.enabled", "metrics.public", "activation-upgrade.linux", "activation-upgrade.windows", "activation-upgrade.unix":
		if value != "true" && value != "false" {
			return badRequest("%s: %q is not true or false", key, value)
		}
	}
	return nil
}

func checkInt(key, value string, lo, hi int) error {
	n, err := strconv.Atoi(value)
	if err != nil || n < lo || n > hi {
		return badRequest("%s: %q is not a whole number from %d to %d", key, value, lo, hi)
	}
	return nil
}

func knownKeys() []string {
	keys := make([]string, 0, len(settingDefaults))
	for k := range settingDefaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// settingLocked returns key's value. Call with s.mu held.
func (s *Server) settingLocked(key string) string {
	if v, ok := s.settings[key]; ok {
		return v
	}
	if platformKeyRe.MatchString(key) {
		return "latest"
	}
	return settingDefaults[key]
}

func (s *Server) setting(_ context.Context, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settingLocked(key)
}

// durationSetting and intSetting read validated settings (call with s.mu
// held); a value that does not parse falls back to the default.
func (s *Server) durationSetting(key string) time.Duration {
	d, err := time.ParseDuration(s.settingLocked(key))
	if err != nil {
		d, _ = time.ParseDuration(settingDefaults[key])
	}
	return d
}

func (s *Server) intSetting(key string) int {
	n, err := strconv.Atoi(s.settingLocked(key))
	if err != nil {
		n, _ = strconv.Atoi(settingDefaults[key])
	}
	return n
}

func (s *Server) pollWait() time.Duration {
	if s.opt.PollWait > 0 {
		return s.opt.PollWait
	}
	return time.Duration(s.intSetting("agents.poll-seconds")) * time.Second
}

// checkOfflineAfter refuses a change of agents.offline-after or
// agents.poll-seconds that leaves offline-after below twice the long-poll
// interval. A healthy idle agent is seen once per interval (its long poll
// is held that long), so a shorter offline-after shows it offline between
// check-ins, and it must be able to miss one check-in (a lost connection,
// a server restart) before it shows offline. value nil is a reset to the
// default. Call with s.mu held.
func (s *Server) checkOfflineAfter(key string, value *string) error {
	if key != "agents.offline-after" && key != "agents.poll-seconds" {
		return nil
	}
	next := func(k string) string {
		switch {
		case k != key:
			return s.settingLocked(k)
		case value == nil:
			return settingDefaults[k]
		}
		return *value
	}
	after, err := time.ParseDuration(next("agents.offline-after"))
	if err != nil {
		return nil // checkSetting refused it already
	}
	interval := s.opt.PollWait
	source := "the server's --poll-wait"
	if interval <= 0 {
		n, err := strconv.Atoi(next("agents.poll-seconds"))
		if err != nil {
			return nil
		}
		interval = time.Duration(n) * time.Second
		source = "agents.poll-seconds " + strconv.Itoa(n)
	}
	minimum := 2 * interval
	if after >= minimum {
		return nil
	}
	if key == "agents.offline-after" {
		return badRequest("agents.offline-after: %s is below the minimum %s: the long-poll interval is %s (%s), so a healthy agent is seen only that often, and it must be able to miss one check-in before it shows offline; set %s or more",
			after, minimum, interval, source, minimum)
	}
	return badRequest("agents.poll-seconds: %s makes the long-poll interval %s, and agents.offline-after (%s) must be at least twice that, %s, or healthy agents show offline between check-ins; raise agents.offline-after to %s or more first",
		next(key), interval, after, minimum, minimum)
}

func (s *Server) settingView(key string) protocol.Setting {
	v, set := s.settings[key]
	if !set {
		v = s.settingLocked(key)
	}
	return describeSetting(protocol.Setting{Key: key, Value: v, Default: !set})
}

func (s *Server) handleSettingsList(w http.ResponseWriter, r *http.Request, _ caller) error {
	s.mu.Lock()
	keys := knownKeys()
	for k := range s.settings {
		if _, ok := settingDefaults[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := protocol.Settings{Settings: []protocol.Setting{}, Patterns: settingPatterns}
	for _, k := range keys {
		out.Settings = append(out.Settings, s.settingView(k))
	}
	s.mu.Unlock()
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) handleSettingGet(w http.ResponseWriter, r *http.Request, _ caller) error {
	key := r.PathValue("key")
	if err := checkSetting(key, s.setting(r.Context(), key)); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Status == http.StatusNotFound {
			return err
		}
	}
	s.mu.Lock()
	v := s.settingView(key)
	s.mu.Unlock()
	writeJSON(w, 200, v)
	return nil
}

func (s *Server) handleSettingSet(w http.ResponseWriter, r *http.Request, _ caller) error {
	key := r.PathValue("key")
	req, err := decodeJSON[protocol.SettingRequest](r.Body)
	if err != nil {
		return err
	}
	return s.putSetting(w, r, key, &req.Value)
}

func (s *Server) handleSettingReset(w http.ResponseWriter, r *http.Request, _ caller) error {
	return s.putSetting(w, r, r.PathValue("key"), nil)
}

// putSetting sets key (value nil: back to its default).
func (s *Server) putSetting(w http.ResponseWriter, r *http.Request, key string, value *string) error {
	shown := ""
	if value != nil {
		shown = *value
	}
	if err := checkSetting(key, shown); err != nil {
		if value != nil {
			return err
		}
		if ae, ok := err.(*apiError); ok && ae.Status == http.StatusNotFound {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOfflineAfter(key, value); err != nil {
		return err
	}
	if value != nil && platformKeyRe.MatchString(key) && shown != "latest" && shown != "none" {
		if err := s.checkPackFor(key, strings.TrimPrefix(key, "version."), shown); err != nil {
			return err
		}
	}
	err := s.change(r.Context(), func(wr *writer) error {
		var err error
		if value == nil {
			err = wr.tx.DeleteSetting(key)
		} else {
			err = wr.tx.SetSetting(key, shown)
		}
		if err != nil {
			return err
		}
		if value == nil {
			shown = "(default)"
		}
		wr.then(func() {
			if value == nil {
				delete(s.settings, key)
			} else {
				s.settings[key] = *value
			}
			s.windowsOK = false
		})
		return wr.event(event{ID: protocol.EvSettingChanged, Msg: fmt.Sprintf("setting %s = %s", key, shown), Fields: map[string]string{"key": key, "value": shown}})
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.settingView(key))
	return nil
}
