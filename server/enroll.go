package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request, _ caller) error {
	req, err := decodeAgentJSON[protocol.EnrollRequest](r.Body)
	if err != nil {
		return err
	}
	st := protocol.Status{
		ProtocolVersion: req.ProtocolVersion, Fingerprint: req.Fingerprint, Name: req.Name, Hostname: req.Hostname,
		Platform: req.Platform, OSFamily: req.OSFamily, Version: req.Version, Supervised: req.Supervised,
		SupervisorVersion: req.SupervisorVersion, Labels: req.Labels, Cluster: req.Cluster,
		PendingReboot: req.PendingReboot, FreeDiskBytes: req.FreeDiskBytes, Floor: req.Floor,
	}
	if err := checkStatus(&st); err != nil {
		return err
	}
	if err := checkEnroll(&req); err != nil {
		return err
	}
	if st.Name == "" {
		st.Name = st.Hostname
	}
	if err := checkString("name or hostname", st.Name, true); err != nil {
		return err
	}
	resp, err := s.Enroll(r.Context(), req.EnrollmentToken, st)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

// Enroll enrolls a new agent with status st (validated by checkStatus,
// its name set) on the strength of enrollment token token, and returns
// its id, credential and settings, with an upgrade on activation decided.
// An unknown, revoked, expired or used-up token is refused (401
// enroll_token), as is the host of a revoked agent (403 host_refused).
func (s *Server) Enroll(ctx context.Context, token string, st protocol.Status) (protocol.EnrollResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	tok, err := s.st.EnrollTokenByHash(ctx, hashSecret(token))
	reason := ""
	switch {
	case errors.Is(err, sql.ErrNoRows):
		reason = "the enrollment token is unknown"
	case err != nil:
		return protocol.EnrollResponse{}, err
	case tok.Revoked:
		reason = "the enrollment token was revoked"
	case now.After(tok.Expires):
		reason = "the enrollment token expired at " + tok.Expires.Format(time.RFC3339)
	case tok.Used >= tok.Uses:
		reason = fmt.Sprintf("the enrollment token is used up (%d of %d uses)", tok.Used, tok.Uses)
	}
	if reason != "" {
		_ = s.change(ctx, func(wr *writer) error {
			return wr.event(event{ID: protocol.EvEnrollRefused, Msg: fmt.Sprintf("enrollment of %s refused: %s", st.Name, reason), Fields: map[string]string{"reason": reason, "hostname": st.Hostname}})
		})
		return protocol.EnrollResponse{}, errf(http.StatusUnauthorized, protocol.CodeEnrollToken, "%s: ask an admin for a new one (molt enroll-token create)", reason)
	}
	if err := s.hostRefusal(ctx, now, st); err != nil {
		return protocol.EnrollResponse{}, err
	}
	// LastSeen stays zero until the first check-in: an agent that enrolled
	// and never checked in is "never connected" for the scheduler.
	a := &agentRec{ID: newAgentID(), Fingerprint: st.Fingerprint, Enrolled: now, St: st}
	cred := newSecret("molta_")
	a.CredHash = hashSecret(cred)
	a.persisted = persistKey(st)
	resp := protocol.EnrollResponse{AgentID: a.ID, Credential: cred, Settings: protocol.AgentSettings{PollSeconds: int(s.pollWait() / time.Second)}}
	err = s.change(ctx, func(wr *writer) error {
		if err := wr.tx.InsertAgent(a.ID, a.CredHash, a.Fingerprint, now, st); err != nil {
			return err
		}
		if err := wr.tx.UseEnrollToken(tok.ID); err != nil {
			return err
		}
		if err := wr.event(event{ID: protocol.EvAgentEnrolled, Agent: a.ID, Msg: fmt.Sprintf("agent %s (%s, %s) enrolled", st.Name, st.Version, st.Platform),
			Fields: map[string]string{"version": st.Version, "platform": st.Platform, "name": st.Name}}); err != nil {
			return err
		}
		wr.then(func() {
			s.agents[a.ID] = a
			s.byCred[a.CredHash] = a.ID
		})
		return s.activation(wr, a, &resp)
	})
	if err != nil {
		return protocol.EnrollResponse{}, err
	}
	return resp, nil
}

// activation decides upgrade on activation for a newly enrolled agent: a
// deployment (event 264 follows when it is handed over) or a recorded skip
// with its reason (event 277).
func (s *Server) activation(wr *writer, a *agentRec, resp *protocol.EnrollResponse) error {
	st := a.St
	family := st.OSFamily
	if s.settingLocked("version."+st.Platform) == "none" {
		return nil
	}
	target, passed := s.policyTarget(st.Platform)
	if target == st.Version {
		return nil
	}
	reason := ""
	goos, _, _ := strings.Cut(st.Platform, "/")
	off := s.settingLocked("activation-upgrade."+family) != "true"
	switch {
	case off && target == "":
		// No release for its platform: there was nothing to skip.
		return nil
	case off:
		// Recorded, so an operator who sees an old agent enroll learns why
		// it was not upgraded and which setting would change that.
		reason = fmt.Sprintf("upgrade on activation is off for %s agents (activation-upgrade.%s)", family, family)
	case !activationOS[goos]:
		reason = "platform not supported: upgrade on activation does not support " + st.Platform + "; upgrade it by hand"
	case s.quarantineSkip(st, target, passed) != "":
		reason = s.quarantineSkip(st, target, passed)
		target = passed
	case target == "":
		reason = "no pack for its platform " + st.Platform
	case !st.Supervised:
		reason = "not supervised: the agent cannot be restarted after an upgrade"
	case s.tooOld(a) != "":
		reason = s.tooOld(a)
	case st.PendingReboot:
		reason = "pending reboot: restart the host; the upgrade is tried again at its next activation"
	case st.FreeDiskBytes > 0 && st.FreeDiskBytes < int64(s.intSetting("agents.min-free-disk-mb"))<<20:
		reason = fmt.Sprintf("not enough disk: %d MB free, %d MB needed", st.FreeDiskBytes>>20, s.intSetting("agents.min-free-disk-mb"))
	}
	if reason != "" {
		resp.Activation, resp.ActivationReason = "skipped", reason
		return wr.event(event{ID: protocol.EvActivationUpgradeSkipped, Agent: a.ID,
			Msg:    fmt.Sprintf("upgrade on activation skipped (%s -> %s): %s", st.Version, target, reason),
			Fields: map[string]string{"from": st.Version, "to": target, "reason": reason}})
	}
	resp.Activation = "requested"
	return s.newDeployment(wr, a, 0, protocol.KindActivation, target)
}

// activationOS are the systems molt's supervisor runs on as a service, so
// an agent there can be restarted after an upgrade on activation.
var activationOS = map[string]bool{
	"linux": true, "windows": true, "darwin": true, "freebsd": true, "openbsd": true, "netbsd": true,
	"solaris": true, "illumos": true, "aix": true,
}

// hostRefusedEvery bounds how often a refused host's enrollments are
// recorded as events: it retries with backoff, for as long as it runs.
const hostRefusedEvery = 10 * time.Minute

// hostRefusal refuses the enrollment of a host whose agent was revoked
// (the same machine fingerprint) until an admin allows it (molt agents
// allow): revoking must keep a host out even when it still holds an
// enrollment token, as a golden image's agent.yaml or
// MOLT_ENROLLMENT_TOKEN do. The token's use is not counted. Call with s.mu
// held.
func (s *Server) hostRefusal(ctx context.Context, now time.Time, st protocol.Status) error {
	h, err := s.st.HostRefusal(ctx, st.Fingerprint)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	id := h.AgentID
	if now.Sub(h.RefusedAt) >= hostRefusedEvery {
		_ = s.change(ctx, func(wr *writer) error {
			if err := wr.tx.SetHostRefusedAt(id, now); err != nil {
				return err
			}
			return wr.event(event{ID: protocol.EvHostRefused, Agent: id,
				Msg:    fmt.Sprintf("enrollment of %s refused: it is the host of revoked agent %s (molt agents allow %s lets it enroll again)", st.Name, id, id),
				Fields: map[string]string{"revoked_agent": id, "name": st.Name, "hostname": st.Hostname}})
		})
	}
	return errf(http.StatusForbidden, protocol.CodeHostRefused, "this host's agent %s was revoked: it may not enroll again until an admin allows it (molt agents allow %s)", id, id)
}
