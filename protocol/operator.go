package protocol

import (
	"fmt"
	"time"
)

// ----- agents -----

// Agent connection statuses.
const (
	AgentOnline   = "online"
	AgentOffline  = "offline"
	AgentInactive = "inactive"
	// AgentRevoked is shown for a revoked agent whatever its last
	// check-in: it no longer connects.
	AgentRevoked = "revoked"
)

// Upgrade statuses of an agent.
const (
	UpgradeUpToDate       = "up_to_date"
	UpgradeRecommended    = "upgrade_recommended"
	UpgradeRequired       = "upgrade_required"        // protocol version too old
	UpgradeManualRequired = "manual_upgrade_required" // unsupervised, or below agents.min-auto-upgrade-version
)

// Agent is an enrolled agent as operators see it.
type Agent struct {
	ID                string            `json:"id"`
	Name              string            `json:"name"`
	Hostname          string            `json:"hostname"`
	Platform          string            `json:"platform"`
	OSFamily          string            `json:"os_family"`
	Version           string            `json:"version"`
	Supervised        bool              `json:"supervised"`
	SupervisorVersion string            `json:"supervisor_version,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Cluster           string            `json:"cluster,omitempty"`
	ProtocolVersion   int               `json:"protocol_version"`
	Status            string            `json:"status"`         // online | offline | inactive | revoked
	UpgradeStatus     string            `json:"upgrade_status"` // up_to_date | upgrade_recommended | ...
	TargetVersion     string            `json:"target_version,omitempty"`
	Busy              bool              `json:"busy"`
	Holds             []string          `json:"holds,omitempty"`
	PendingReboot     bool              `json:"pending_reboot,omitempty"`
	FreeDiskBytes     int64             `json:"free_disk_bytes,omitempty"`
	Floor             string            `json:"floor,omitempty"`
	Enrolled          time.Time         `json:"enrolled"`
	LastSeen          time.Time         `json:"last_seen,omitempty"`
	Revoked           bool              `json:"revoked,omitempty"`
	LastResult        *TrialResult      `json:"last_result,omitempty"`
	Workloads         []Workload        `json:"workloads,omitempty"`
	// HostRefused: the agent is revoked and its host (its machine
	// fingerprint) may not enroll again until an admin allows it
	// (POST /v1/agents/{id}/allow).
	HostRefused bool `json:"host_refused,omitempty"`
	// PreviousVersion is the version the agent ran before Version, when
	// known: the one a trial in progress came from, or the one the last
	// committed trial replaced (a rollback keeps none).
	PreviousVersion string `json:"previous_version,omitempty"`
	// TrialVersion is the version on trial: switched to, watched by the
	// supervisor, not yet committed.
	TrialVersion string `json:"trial_version,omitempty"`
	// Upgrade is the upgrade order in flight, as the agent last said.
	Upgrade *UpgradeProgress `json:"upgrade,omitempty"`
}

// ----- tokens -----

// TokenRequest is POST /v1/tokens.
type TokenRequest struct {
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
}

// Token describes an API token (never its secret).
type Token struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitempty"`
	Revoked  bool      `json:"revoked,omitempty"`
}

// TokenCreated answers POST /v1/tokens; Secret is shown only here.
type TokenCreated struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// EnrollTokenRequest is POST /v1/enroll-tokens.
type EnrollTokenRequest struct {
	Name string `json:"name,omitempty"`
	// ExpiresIn in seconds (default 86400; at most one year).
	ExpiresIn int64 `json:"expires_in,omitempty"`
	// Uses is how many enrollments it allows (default 1; 0 is not allowed;
	// at most 1,000,000).
	Uses int `json:"uses,omitempty"`
}

// EnrollToken describes an enrollment token.
type EnrollToken struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Revoked bool      `json:"revoked,omitempty"`
}

// EnrollTokenCreated answers POST /v1/enroll-tokens; Secret is shown only here.
type EnrollTokenCreated struct {
	Token  EnrollToken `json:"token"`
	Secret string      `json:"secret"`
}

// ----- releases and settings -----

// Release is an imported pack.
type Release struct {
	Version   string    `json:"version"`
	Released  time.Time `json:"released"`
	Floor     string    `json:"floor,omitempty"`
	Platforms []string  `json:"platforms"`
	Imported  time.Time `json:"imported"`
	Size      int64     `json:"size"`
	// Quarantined lists the platforms the release is quarantined for,
	// sorted by platform (docs/server.md, "Quarantine").
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// Quarantine keeps a release from one platform: upgrade on activation
// passes it over there and agents are not recommended it.
type Quarantine struct {
	Platform string    `json:"platform"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// Automatic is true when rollbacks quarantined it
	// (releases.quarantine-after, or a canary's rollback), false when an
	// operator did.
	Automatic bool `json:"automatic,omitempty"`
}

// QuarantineRequest is the body of POST /v1/releases/{version}/quarantine
// and /unquarantine. No platforms: every platform of the release (for
// unquarantine: every platform it is quarantined for).
type QuarantineRequest struct {
	Platforms []string `json:"platforms,omitempty"`
	// Reason is recorded with a quarantine (ignored by unquarantine).
	Reason string `json:"reason,omitempty"`
}

// Setting is one key and its value.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Default is true when the value is the built-in default.
	Default bool `json:"default,omitempty"`
	// DefaultValue is the built-in default (empty for a window.* key: it
	// exists only once set).
	DefaultValue string `json:"default_value"`
	// Description says what the setting does and what a good value looks
	// like (empty for a key the server does not know).
	Description string `json:"description,omitempty"`
}

// SettingPattern describes keys made from a pattern
// (version.<goos>/<goarch>, window.<label>=<value>): GET /v1/settings
// lists such a key only once it is set.
type SettingPattern struct {
	Pattern     string `json:"pattern"`
	Example     string `json:"example"`
	Default     string `json:"default,omitempty"`
	Description string `json:"description"`
}

// SettingRequest is PUT /v1/settings/{key}.
type SettingRequest struct {
	Value string `json:"value"`
}

// ServerInfo is GET /v1/server.
type ServerInfo struct {
	Version         string    `json:"version"`
	ProtocolVersion int       `json:"protocol_version"`
	Time            time.Time `json:"time"`
	Role            string    `json:"role"` // the caller's role
}

// ----- events -----

// Event is one entry of the event log.
type Event struct {
	// Seq orders events; use it as after_id to page or follow.
	Seq          int64             `json:"seq"`
	ID           int               `json:"id"` // the stable event id, e.g. 264
	Name         string            `json:"name"`
	At           time.Time         `json:"at"`
	AgentID      string            `json:"agent_id,omitempty"`
	RunID        string            `json:"run_id,omitempty"`
	DeploymentID string            `json:"deployment_id,omitempty"`
	Message      string            `json:"message"`
	Fields       map[string]string `json:"fields,omitempty"`
}

// Events is GET /v1/events.
type Events struct {
	Events []Event `json:"events"`
	// Next is the after_id for the next page or follow request.
	Next int64 `json:"next"`
}

// Listing wrappers (every list answer is an object, so fields can be added).
type (
	Agents struct {
		Agents []Agent `json:"agents"`
		// Total is how many agents matched before paging (limit,
		// offset).
		Total int `json:"total"`
	}
	Runs struct {
		Runs []Run `json:"runs"`
	}
	Deployments struct {
		Deployments []Deployment `json:"deployments"`
		// Total is how many deployments matched before paging (limit,
		// offset).
		Total int `json:"total"`
	}
	Releases struct {
		Releases []Release `json:"releases"`
	}
	Settings struct {
		Settings []Setting `json:"settings"`
		// Patterns describe the keys made from a pattern.
		Patterns []SettingPattern `json:"patterns,omitempty"`
	}
	Tokens struct {
		Tokens []Token `json:"tokens"`
	}
	EnrollTokens struct {
		Tokens []EnrollToken `json:"tokens"`
	}
)

// PackPath is the URL path of a file of a pack.
func PackPath(version, file string) string { return fmt.Sprintf("/v1/packs/%s/%s", version, file) }
