// Package protocol holds the wire types of molt's HTTP/JSON API: the agent
// protocol (enroll, check-in, report, packs) and the operator API (tokens,
// agents, releases, settings, runs, deployments, history, events). Agent and
// server both import it, so a field changes in one place. The protocol is
// versioned by Version; fields are only ever added, never renamed.
package protocol

import (
	"time"
)

// Version is the agent protocol version this build speaks. An agent sends
// its own in every request; the server serves every version from
// MinVersion and marks agents below Version "upgrade required".
const (
	Version    = 1
	MinVersion = 1
)

// Request limits the server enforces (bytes of a request body).
const (
	MaxBodySize     = 1 << 20 // every JSON body
	MaxPackSize     = 2 << 30 // POST /v1/releases (a pack archive)
	MaxLabels       = 64      // labels per agent
	MaxStringLen    = 256     // any single string field
	MaxReportSteps  = 256     // steps in one report
	MaxHolds        = 32      // holds in one status
	MaxRunAgents    = 100000  // agent ids in one selection
	DefaultPollWait = 60 * time.Second
	// MaxPollSeconds bounds the agents.poll-seconds setting and a
	// check-in's wait_seconds.
	MaxPollSeconds = 600
	// MaxDeploymentSteps bounds the steps a deployment's DEPLOY report
	// keeps, the agent's and the server's: the server records no agent
	// step past it.
	MaxDeploymentSteps = 1000
)

// Header names.
const (
	// HeaderAuthorization carries "Bearer <token>": an API token, or an
	// agent credential on /v1/agent/* and /v1/packs/*.
	HeaderAuthorization = "Authorization"
)

// Error is the body of every non-2xx response.
type Error struct {
	// Error is one line for a human.
	Error string `json:"error"`
	// Code is stable and for programs (see the Code* constants).
	Code string `json:"code"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"        // 400: malformed JSON or a field out of range
	CodeUnauthorized     = "unauthorized"       // 401: no or unknown token or credential
	CodeForbidden        = "forbidden"          // 403: the token's role is too low
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the object's state forbids it
	CodeIdentityCloned   = "identity_cloned"    // 409: same agent id, another machine fingerprint: re-enroll
	CodeAgentRevoked     = "agent_revoked"      // 401: the credential was revoked: re-enroll
	CodeEnrollToken      = "enrollment_refused" // 401: enrollment token unknown, expired or used up
	CodeHostRefused      = "host_refused"       // 403: the machine of a revoked agent enrolls: an admin must allow it (molt agents allow)
	CodeProtocol         = "protocol_unsupported"
	CodeTooLarge         = "too_large"        // 413
	CodePackRejected     = "pack_rejected"    // 422: import refused (signature, manifest, files)
	CodeUnavailable      = "unavailable"      // 503: shutting down
	CodeInternal         = "internal"         // 500
	CodeBelowFloor       = "below_floor"      // 422: a target below an agent's floor
	CodeRevertNeedsRole  = "revert_forbidden" // 403: a revert needs the operator role
	CodeCSRF             = "csrf"             // 403: a session request without its X-CSRF-Token, or from another origin
)

// Roles of API tokens, in increasing power. Each role may do what the
// lower ones may.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// RoleRank orders roles; 0 is not a role.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// OS families for activation upgrade settings.
const (
	FamilyLinux   = "linux"
	FamilyWindows = "windows"
	FamilyUnix    = "unix"
)
