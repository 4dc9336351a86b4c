package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/moltfleet/molt/artifacts"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/runplan"
	"github.com/moltfleet/molt/store"
	"github.com/moltfleet/molt/updater/pack"
)

// persistKey is the part of a status worth a database write when it
// changes: busy, holds, free disk and download progress change often and
// live only in memory.
func persistKey(st protocol.Status) string {
	st.Busy, st.Holds, st.FreeDiskBytes, st.Upgrade = false, nil, 0, nil
	b, _ := json.Marshal(st)
	return string(b)
}

// targetFor is the version the policy wants on platform ("" for none),
// quarantined releases passed over (policyTarget). Call with s.mu held.
func (s *Server) targetFor(platform string) string {
	t, _ := s.policyTarget(platform)
	return t
}

func (s *Server) connStatus(a *agentRec, now time.Time) string {
	return connStatusAt(a, now, s.durationSetting("agents.offline-after"), s.durationSetting("agents.inactive-after"))
}

// connStatusAt is connStatus with the settings read once, for loops over
// the whole fleet under s.mu.
func connStatusAt(a *agentRec, now time.Time, offlineAfter, inactiveAfter time.Duration) string {
	seen := a.LastSeen
	if seen.IsZero() {
		seen = a.Enrolled // enrolled, never checked in: offline until it does
	}
	switch {
	case now.Sub(seen) > inactiveAfter:
		return protocol.AgentInactive
	case a.LastSeen.IsZero() || now.Sub(seen) > offlineAfter:
		return protocol.AgentOffline
	}
	return protocol.AgentOnline
}

// upgradeKey is what upgradeStatus depends on in an agent.
type upgradeKey struct {
	platform, version string
	protocol          int
	supervised        bool
}

// upgradeStatuses memoizes upgradeStatus per upgradeKey within one pass
// over the fleet under s.mu: a fleet has few distinct platforms and
// versions, and the policy lookup (a pattern match, the releases) is not
// worth doing 20,000 times while every check-in waits for s.mu.
type upgradeStatuses map[upgradeKey]string

func (m upgradeStatuses) of(s *Server, a *agentRec) string {
	k := upgradeKey{a.St.Platform, a.St.Version, a.St.ProtocolVersion, a.St.Supervised}
	st, ok := m[k]
	if !ok {
		st = s.upgradeStatus(a)
		m[k] = st
	}
	return st
}

// tooOld says why an agent cannot be upgraded automatically ("" if it
// can). Call with s.mu held.
func (s *Server) tooOld(a *agentRec) string {
	return runplan.TooOld(s.planAgent(a), s.settingLocked("agents.min-auto-upgrade-version"))
}

func (s *Server) upgradeStatus(a *agentRec) string {
	if a.St.ProtocolVersion < protocol.Version {
		return protocol.UpgradeRequired
	}
	target := s.targetFor(a.St.Platform)
	if target == "" || !semver.Less(a.St.Version, target) {
		return protocol.UpgradeUpToDate
	}
	if s.tooOld(a) != "" {
		return protocol.UpgradeManualRequired
	}
	return protocol.UpgradeRecommended
}

// newDeployment creates a pending deployment of a to target outside a run
// (activation, repair) and wakes the scheduler.
func (s *Server) newDeployment(wr *writer, a *agentRec, run int64, kind, target string) error {
	return s.newRunDeployment(wr, a, run, kind, target, 0, false)
}

// newRunDeployment is newDeployment in wave w of its run, as a canary or
// not.
func (s *Server) newRunDeployment(wr *writer, a *agentRec, run int64, kind, target string, wave int, canary bool) error {
	revert := semver.Less(target, a.St.Version)
	id, err := wr.tx.InsertDeployment(store.Deployment{RunID: run, AgentID: a.ID, AgentName: a.St.Name, Platform: a.St.Platform, Kind: kind,
		From: a.St.Version, Target: target, Revert: revert, State: protocol.StatePending, Created: wr.now, Updated: wr.now, Wave: wave, Canary: canary})
	if err != nil {
		return err
	}
	d := &depRec{ID: id, RunID: run, Wave: wave, Canary: canary, AgentID: a.ID, Platform: a.St.Platform, Kind: kind, From: a.St.Version, Target: target, Revert: revert, State: protocol.StatePending, Updated: wr.now}
	if err := wr.step(id, "server: created", kind+" to "+target); err != nil {
		return err
	}
	wr.then(func() {
		s.open[a.ID] = d
		if r := s.runs[run]; r != nil {
			r.Counts[d.State]++
			r.countWave(d.Wave, "", d.State)
			r.Total++
			if r.FirstDep == 0 || d.ID < r.FirstDep {
				r.FirstDep = d.ID
			}
		}
		s.wake()
	})
	return nil
}

func (s *Server) baseURL(r *http.Request) string {
	if s.opt.PublicURL != "" {
		return strings.TrimRight(s.opt.PublicURL, "/")
	}
	return "https://" + r.Host
}

// agentLocked is agent id for a request of the agent API, refused as
// authAgent refuses a credential: unknown, or revoked (also when that
// happened after the request was authenticated). Call with s.mu held.
func (s *Server) agentLocked(id string) (*agentRec, error) {
	a := s.agents[id]
	if a == nil {
		return nil, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "agent %s is unknown: enroll again", id)
	}
	if a.Revoked {
		return nil, errf(http.StatusUnauthorized, protocol.CodeAgentRevoked, "agent %s was revoked: enroll again", id)
	}
	return a, nil
}

// ordersFor lists what agent a should do now. Call with s.mu held.
func (s *Server) ordersFor(a *agentRec, base string) []protocol.Order {
	var out []protocol.Order
	if d := s.open[a.ID]; d != nil && protocol.Handed(d.State) {
		out = append(out, protocol.Order{ID: depID(d.ID), Kind: protocol.OrderUpgrade, Version: d.Target,
			PackURL: base + "/v1/packs/" + d.Target, Repair: d.Kind == protocol.KindRepair, Revert: d.Revert})
	}
	for _, c := range s.cleanups[a.ID] {
		out = append(out, protocol.Order{ID: cleanupID(c.ID), Kind: protocol.OrderCleanup, Keep: c.Keep})
	}
	return out
}

func (s *Server) handlePack(w http.ResponseWriter, r *http.Request, _ caller) error {
	version, p := r.PathValue("version"), r.PathValue("path")
	if !pack.ValidVersion(version) || !pack.SafePath(p) {
		return notFound("no such pack file")
	}
	s.mu.Lock()
	_, ok := s.releases[version]
	s.mu.Unlock()
	if !ok {
		return notFound("release %s is not imported", version)
	}
	if s.opt.ArtifactRedirect > 0 {
		// Straight from the store: the agent follows the redirect with its
		// Range header, and its credential stays with this server.
		u, err := s.art.Presign(r.Context(), version, p, s.opt.ArtifactRedirect)
		if err != nil {
			return err
		}
		if u != "" {
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return nil
		}
	}
	f, err := s.art.Open(r.Context(), version, p)
	if errors.Is(err, artifacts.ErrNotFound) {
		return notFound("release %s has no file %s", version, p)
	}
	if err != nil {
		return errf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "release %s: %s: the artifact store: %v", version, p, err)
	}
	defer f.Close()
	// Large artifacts over slow links need longer than the default write
	// timeout; the deadline still bounds a stuck client.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%x-%x"`, version, f.Size(), f.ModTime().UnixNano()))
	http.ServeContent(w, r, "", f.ModTime(), f)
	return nil
}
