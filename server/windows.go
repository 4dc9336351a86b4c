package server

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
)

// Default maintenance windows by label: the setting window.KEY=VALUE holds
// the window in which deployments of runs may start on agents with that
// label (molt settings set window.env=prod "Mon-Fri 01:00-05:00
// Europe/Berlin"). It applies to every run, whatever its own --window
// (which can only narrow it): the operator who set it meant those hosts
// and no others are upgraded outside it. When several match an agent, the
// first key in order applies.

var windowKeyRe = regexp.MustCompile(`^window\.([A-Za-z0-9][A-Za-z0-9._/-]{0,62})=([A-Za-z0-9._/-]{1,63})$`)

// hostWindow is one window.KEY=VALUE setting, parsed.
type hostWindow struct {
	key, label, value string
	w                 window.Window
}

// checkWindowSetting validates a window.KEY=VALUE setting.
func checkWindowSetting(key, value string) error {
	if _, err := window.Parse(value); err != nil {
		return badRequest("%s: %v", key, err)
	}
	if strings.TrimSpace(value) == "" {
		return badRequest("%s: give a window like \"Mon-Fri 01:00-05:00 Europe/Berlin\" (molt settings reset %s removes it)", key, key)
	}
	return nil
}

// hostWindows are the window settings in key order, parsed once after each
// change. Call with s.mu held.
func (s *Server) hostWindows() []hostWindow {
	if s.windowsOK {
		return s.windows
	}
	s.windows = s.windows[:0]
	for k, v := range s.settings {
		m := windowKeyRe.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		w, err := window.Parse(v)
		if err != nil {
			continue // checked when set
		}
		s.windows = append(s.windows, hostWindow{key: k, label: m[1], value: m[2], w: w})
	}
	sort.Slice(s.windows, func(i, j int) bool { return s.windows[i].key < s.windows[j].key })
	s.windowsOK = true
	return s.windows
}

// windowGate says whether agent a's default window lets a deployment start
// now: "" when it does (or a has none), else waiting_for_window with the
// reason and the window. Call with s.mu held.
func (s *Server) windowGate(a *agentRec, now time.Time) (state, reason string, w window.Window) {
	for _, hw := range s.hostWindows() {
		if a.St.Labels[hw.label] != hw.value {
			continue
		}
		if hw.w.Contains(now) {
			return "", "", window.Window{}
		}
		return protocol.StateWaitingForWindow, fmt.Sprintf("outside the maintenance window of %s=%s, %s (opens %s)", hw.label, hw.value, hw.w, hw.w.NextOpen(now).UTC().Format(time.RFC3339)), hw.w
	}
	return "", "", window.Window{}
}
