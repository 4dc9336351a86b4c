package server

import (
	"github.com/moltfleet/molt/protocol"
)

// What each setting means, as GET /v1/settings tells it: the console's
// settings page shows it beside the value and the default, so the server
// that enforces a setting also explains it, and a key added here shows up
// explained without a change to the page. TestSettingsDescribed keeps
// every key of settingDefaults described.
var settingDescriptions = map[string]string{
	"hooks.on-deployment-end":         "A command the server runs when a deployment ends (split into words like a shell, no expansion: write sh -c '...' for a shell). It gets MOLT_RUN_ID, MOLT_AGENT, MOLT_DEPLOYMENT_ID, MOLT_DEPLOYMENT_STATUS, MOLT_WAVE and more in its environment (docs/server.md, Hooks). Empty: none.",
	"hooks.on-run-end":                "A command the server runs when a run ends, with MOLT_RUN_ID, MOLT_RUN_TEXT and MOLT_RUN_STATUS (ENDED_OK or ENDED_NOT_OK) in its environment. Empty: none.",
	"hooks.timeout":                   "How long a hook may run before it is stopped and recorded as failed (event 1100). A Go duration like 60s.",
	"agents.inactive-after":           "An agent not seen for this long is inactive: hidden from the agents list unless inactive agents are asked for. A Go duration like 720h.",
	"agents.offline-after":            "An agent not seen for this long shows offline. At least twice the long-poll interval (agents.poll-seconds), so a healthy agent may miss one check-in. A Go duration like 3m.",
	"agents.poll-seconds":             "How long an idle agent's check-in is held open (the long-poll interval), 1 to 600 seconds; at most half of agents.offline-after.",
	"agents.min-auto-upgrade-version": "Agents below this version are too old for automatic upgrade: runs and upgrade on activation leave them out, and they show manual_upgrade_required when behind. A version, or empty for none.",
	"agents.min-free-disk-mb":         "The free disk (MB) an agent needs for an upgrade on activation; with less it is skipped (event 277, not enough disk).",
	"repair.enabled":                  "true: an agent that comes back with another version than its last successful target gets a REPAIR deployment (event 709). true or false.",
	"repair.max-concurrent":           "How many repairs and activation upgrades may be in progress at once, 1 to 10000.",
	"deployments.stuck-after":         "A started deployment with no progress for this long is stuck: its run's slot is freed and it counts as a failure until it moves on, or an operator retries or cancels it (event 722). In watching at least the supervisor's trial bound. A Go duration like 30m.",
	"deployments.timeout":             "A started deployment, stuck or not, with no progress for this long fails. A Go duration like 2h, or off to leave stuck deployments to an operator.",
	"metrics.public":                  "true: /metrics answers without a token (for a Prometheus that holds none). true or false.",
	"events.keep":                     "Events older than this are deleted (hourly). A Go duration like 2160h (90 days).",
	"activation-upgrade.linux":        "Upgrade on activation for Linux agents: an agent that enrolls with another version than its platform's version policy (version.<goos>/<goarch>) is upgraded to it (event 264), or the skip is recorded with its reason (event 277). true or false.",
	"activation-upgrade.windows":      "Upgrade on activation for Windows agents (as activation-upgrade.linux). true or false.",
	"activation-upgrade.unix":         "Upgrade on activation for agents of the unix OS family (Unix systems other than Linux; as activation-upgrade.linux). true or false.",
	"releases.quarantine-after":       "Rollbacks of a release on one platform's agents that quarantine it there (one canary's rollback does too); a quarantined release is passed over by upgrade on activation and not recommended. 0 to 1000000; 0 turns automatic quarantine off.",
	"sessions.lifetime":               "How long a console session lasts after sign-in before the browser must sign in again. A Go duration like 12h.",
}

// Keys made from a pattern: listed by GET /v1/settings once set, and
// described here so a client can offer to set one that is not.
var settingPatterns = []protocol.SettingPattern{
	{
		Pattern:     "version.<goos>/<goarch>",
		Example:     "version.linux/amd64",
		Default:     "latest",
		Description: "Version control for a platform: latest (the highest imported release with a pack for it that is not quarantined there), a pinned version (which must be imported with a pack for the platform), or none (no policy: no upgrade on activation, agents always up to date). It is also the target of upgrade on activation.",
	},
	{
		Pattern:     "window.<label>=<value>",
		Example:     "window.env=prod",
		Description: "A maintenance window for the agents with that label, like Mon-Fri 01:00-05:00 Europe/Berlin or daily 22:00-23:00 UTC (docs/windows.md): deployments of every run start on them only inside it. Reset removes it.",
	},
}

// describeSetting fills in what a setting means and its default.
func describeSetting(st protocol.Setting) protocol.Setting {
	if d, ok := settingDescriptions[st.Key]; ok {
		st.Description, st.DefaultValue = d, settingDefaults[st.Key]
		return st
	}
	switch {
	case platformKeyRe.MatchString(st.Key):
		st.Description, st.DefaultValue = settingPatterns[0].Description, settingPatterns[0].Default
	case windowKeyRe.MatchString(st.Key):
		st.Description = settingPatterns[1].Description
	}
	return st
}
