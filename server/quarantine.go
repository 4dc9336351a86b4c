package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// A quarantine keeps a release from one platform (docs/server.md,
// "Quarantine"): upgrade on activation passes it over there, the version
// policy's "latest" resolves to the newest release not quarantined, and
// agents are not recommended it. Rollbacks set it (releases.quarantine-after
// of a platform's agents, or one canary), in the transaction that records
// the rollback; an operator sets and lifts it by hand.

// quarantineKey is a release on one platform.
type quarantineKey struct{ version, platform string }

// quarantineRec is a quarantine in force, mirrored from the quarantines
// table (rows with lifted = 0).
type quarantineRec struct {
	Reason    string
	At        time.Time
	Automatic bool
}

// quarantined says whether version is quarantined for platform, and why.
// Call with s.mu held.
func (s *Server) quarantined(version, platform string) (reason string, ok bool) {
	q, ok := s.quarantines[quarantineKey{version, platform}]
	return q.Reason, ok
}

// policyTarget is the version the policy wants on platform with
// quarantines applied ("" for none), and passed, the quarantined version
// the policy named or "latest" would have been without them ("" when the
// quarantine changed nothing). A pinned version that is quarantined gives
// no target; "latest" gives the newest release not quarantined. Call with
// s.mu held.
func (s *Server) policyTarget(platform string) (target, passed string) {
	switch pol := s.settingLocked("version." + platform); pol {
	case "none":
		return "", ""
	case "latest":
		for v, r := range s.releases {
			if !r.Platforms[platform] {
				continue
			}
			if _, q := s.quarantined(v, platform); q {
				if passed == "" || semver.Less(passed, v) {
					passed = v
				}
			} else if target == "" || semver.Less(target, v) {
				target = v
			}
		}
		if passed != "" && target != "" && semver.Less(passed, target) {
			passed = "" // an older quarantined release changes nothing
		}
		return target, passed
	default:
		if r, ok := s.releases[pol]; ok && r.Platforms[platform] {
			if _, q := s.quarantined(pol, platform); q {
				return "", pol
			}
			return pol, ""
		}
		return "", ""
	}
}

// quarantineSkip is the reason an upgrade on activation is skipped because
// of a quarantine ("" when it is not): the policy's release is
// quarantined and no release not quarantined is newer than the agent's
// version. Passing over a quarantined release never downgrades an agent.
// Call with s.mu held.
func (s *Server) quarantineSkip(st protocol.Status, target, passed string) string {
	if passed == "" || (target != "" && semver.Less(st.Version, target)) {
		return ""
	}
	why, _ := s.quarantined(passed, st.Platform)
	return fmt.Sprintf("release %s is quarantined for %s: %s", passed, st.Platform, why)
}

// noteRollback quarantines d's target for d's platform when its rollback
// is the releases.quarantine-after-th on that platform since the last
// quarantine was lifted, or d is a canary. It runs in the transaction that
// records the rollback (after d is rolled_back there), so the count and
// the quarantine agree across crashes. releases.quarantine-after 0 turns
// automatic quarantine off, for canaries too.
func (s *Server) noteRollback(wr *writer, d *depRec) error {
	if _, ok := s.quarantined(d.Target, d.Platform); ok {
		return nil
	}
	after := s.intSetting("releases.quarantine-after")
	if after <= 0 {
		return nil
	}
	var reason string
	if d.Canary {
		reason = fmt.Sprintf("rolled back on a canary of run %s (deployment %s)", runID(d.RunID), depID(d.ID))
	} else {
		n, err := wr.tx.RollbacksSinceLift(d.Target, d.Platform)
		if err != nil {
			return fmt.Errorf("count rollbacks of %s on %s: %w", d.Target, d.Platform, err)
		}
		if n < after {
			return nil
		}
		reason = fmt.Sprintf("rolled back on %d %s agents (releases.quarantine-after %d), the last in deployment %s", n, d.Platform, after, depID(d.ID))
	}
	return s.setQuarantine(wr, event{Agent: d.AgentID, Run: d.RunID, Dep: d.ID}, d.Target, d.Platform, reason, true)
}

// setQuarantine records a quarantine of version for platform with its
// event (ev names what caused it); the caller checked it is not in force.
func (s *Server) setQuarantine(wr *writer, ev event, version, platform, reason string, automatic bool) error {
	if err := wr.tx.SetQuarantine(store.Quarantine{Version: version, Platform: platform, Reason: reason, Automatic: automatic, At: wr.now}); err != nil {
		return fmt.Errorf("quarantine %s on %s: %w", version, platform, err)
	}
	q := quarantineRec{Reason: reason, At: wr.now, Automatic: automatic}
	wr.then(func() { s.quarantines[quarantineKey{version, platform}] = q })
	ev.ID = protocol.EvQuarantined
	ev.Msg = fmt.Sprintf("release %s quarantined for %s: %s", version, platform, reason)
	ev.Fields = map[string]string{"version": version, "platform": platform, "reason": reason, "automatic": strconv.FormatBool(automatic)}
	return wr.event(ev)
}

// liftQuarantine ends the quarantine of version for platform; rollbacks
// count towards releases.quarantine-after again from now.
func (s *Server) liftQuarantine(wr *writer, version, platform string) error {
	if err := wr.tx.LiftQuarantine(version, platform, wr.now); err != nil {
		return fmt.Errorf("unquarantine %s on %s: %w", version, platform, err)
	}
	wr.then(func() { delete(s.quarantines, quarantineKey{version, platform}) })
	return wr.event(event{ID: protocol.EvUnquarantined, Msg: fmt.Sprintf("release %s unquarantined for %s", version, platform),
		Fields: map[string]string{"version": version, "platform": platform}})
}

// loadQuarantines mirrors the quarantines in force at startup.
func (s *Server) loadQuarantines(ctx context.Context) error {
	s.quarantines = map[quarantineKey]quarantineRec{}
	qs, err := s.st.QuarantinesInForce(ctx)
	if err != nil {
		return fmt.Errorf("quarantines: %w", err)
	}
	for _, q := range qs {
		s.quarantines[quarantineKey{q.Version, q.Platform}] = quarantineRec{Reason: q.Reason, At: q.At, Automatic: q.Automatic}
	}
	return nil
}

// quarantineMetric is the molt_release_quarantined series of /metrics,
// one per quarantine in force (an alert on it tells of an automatic one).
// Call with s.mu held.
func (s *Server) quarantineMetric() string {
	var lines []string
	for k, q := range s.quarantines {
		if _, imported := s.releases[k.version]; imported {
			lines = append(lines, fmt.Sprintf("molt_release_quarantined{version=\"%s\",platform=\"%s\",automatic=\"%t\"} 1\n", promLabel(k.version), promLabel(k.platform), q.Automatic))
		}
	}
	sort.Strings(lines)
	return "# HELP molt_release_quarantined Releases quarantined for a platform (1 while in force), and whether rollbacks quarantined it.\n# TYPE molt_release_quarantined gauge\n" + strings.Join(lines, "")
}

// quarantinesOf lists version's quarantines in force, by platform. Call
// with s.mu held.
func (s *Server) quarantinesOf(version string, platforms []string) []protocol.Quarantine {
	var out []protocol.Quarantine
	for _, p := range platforms {
		if q, ok := s.quarantines[quarantineKey{version, p}]; ok {
			out = append(out, protocol.Quarantine{Platform: p, Reason: q.Reason, At: q.At, Automatic: q.Automatic})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Platform < out[j].Platform })
	return out
}

// addQuarantines fills in the quarantines of listed releases.
func (s *Server) addQuarantines(rels []protocol.Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rels {
		rels[i].Quarantined = s.quarantinesOf(rels[i].Version, rels[i].Platforms)
	}
}

// quarantinePlatforms checks the platforms a request names against
// release r (all of r's when none is named) and returns them sorted.
func quarantinePlatforms(version string, r releaseRec, named []string) ([]string, error) {
	if len(named) == 0 {
		for p := range r.Platforms {
			named = append(named, p)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range named {
		if !r.Platforms[p] {
			have := make([]string, 0, len(r.Platforms))
			for q := range r.Platforms {
				have = append(have, q)
			}
			sort.Strings(have)
			return nil, notFound("release %s has no pack for platform %q (its platforms: %s)", version, p, strings.Join(have, ", "))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Server) handleQuarantine(w http.ResponseWriter, r *http.Request, _ caller) error {
	return s.quarantineRequest(w, r, true)
}

func (s *Server) handleUnquarantine(w http.ResponseWriter, r *http.Request, _ caller) error {
	return s.quarantineRequest(w, r, false)
}

// quarantineRequest quarantines (on) or unquarantines a release for the
// platforms the body names and answers the release. Platforms already in
// the state asked for are left as they are, without an event.
func (s *Server) quarantineRequest(w http.ResponseWriter, r *http.Request, on bool) error {
	version := r.PathValue("version")
	req, err := decodeJSON[protocol.QuarantineRequest](r.Body)
	if err != nil {
		return err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if err := checkText(text{field: "reason", v: req.Reason, limit: 1024}); err != nil {
		return err
	}
	if req.Reason == "" {
		req.Reason = "quarantined by an operator"
	}
	s.mu.Lock()
	err = s.setQuarantines(r.Context(), version, req, on)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	rels, err := s.listReleases(r.Context())
	if err != nil {
		return err
	}
	for _, rel := range rels {
		if rel.Version == version {
			writeJSON(w, 200, rel)
			return nil
		}
	}
	return notFound("release %s is not imported", version)
}

// setQuarantines applies a quarantine request to version. Call with s.mu
// held.
func (s *Server) setQuarantines(ctx context.Context, version string, req protocol.QuarantineRequest, on bool) error {
	rel, ok := s.releases[version]
	if !ok {
		return notFound("release %s is not imported", version)
	}
	plats, err := quarantinePlatforms(version, rel, req.Platforms)
	if err != nil {
		return err
	}
	return s.change(ctx, func(wr *writer) error {
		for _, p := range plats {
			_, in := s.quarantined(version, p)
			switch {
			case on && !in:
				if err := s.setQuarantine(wr, event{}, version, p, req.Reason, false); err != nil {
					return err
				}
			case !on && in:
				if err := s.liftQuarantine(wr, version, p); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
