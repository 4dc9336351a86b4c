package server

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// maxDeploymentsPage bounds one page of GET /v1/deployments.
const maxDeploymentsPage = 100000

// deploymentKinds are the kinds GET /v1/deployments filters by.
var deploymentKinds = []string{protocol.KindUpgrade, protocol.KindRepair, protocol.KindActivation}

// handleDeploymentList is the upgrade history: deployments newest first,
// filtered and paged on the server so a console pages through millions of
// them; total counts the matches before paging.
func (s *Server) handleDeploymentList(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	f, err := s.deploymentFilter(q)
	if err != nil {
		return err
	}
	limit, offset := 1000, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeploymentsPage {
			return badRequest("limit %q is not from 1 to %d", v, maxDeploymentsPage)
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("offset %q is not a number from 0 up", v)
		}
		offset = n
	}
	ctx := r.Context()
	deps, err := s.st.Deployments(ctx, f, limit, offset)
	if err != nil {
		return err
	}
	total, err := s.st.CountDeployments(ctx, f)
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.Deployments{Deployments: apiDeployments(deps), Total: total})
	return nil
}

// deploymentFilter reads the history's filters: agent, run, state, kind
// and the time range since..until of the deployments' creation.
func (s *Server) deploymentFilter(q url.Values) (store.DeploymentFilter, error) {
	var f store.DeploymentFilter
	if v := q.Get("agent"); v != "" {
		s.mu.Lock()
		a, err := s.findAgent(v)
		s.mu.Unlock()
		if err != nil {
			return f, err
		}
		f.AgentID = a.ID
	}
	if v := q.Get("run"); v != "" {
		id, ok := parseID(v, "r-")
		if !ok {
			return f, badRequest("run %q is not a run id like r-3", v)
		}
		f.RunID = id
	}
	if v := q.Get("state"); v != "" {
		if !slices.Contains(protocol.DeploymentStates, v) {
			return f, badRequest("state %q is not one of %s", v, strings.Join(protocol.DeploymentStates, ", "))
		}
		f.State = v
	}
	if v := q.Get("kind"); v != "" {
		if !slices.Contains(deploymentKinds, v) {
			return f, badRequest("kind %q is not one of %s", v, strings.Join(deploymentKinds, ", "))
		}
		f.Kind = v
	}
	now := s.clock.Now()
	for _, b := range []struct {
		name  string
		bound *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		t, err := pastTime(v, now)
		if err != nil {
			return f, badRequest("%s: %q is neither an RFC 3339 time nor a duration like 24h", b.name, v)
		}
		*b.bound = t
	}
	return f, nil
}

// pastTime reads an RFC 3339 time, or a duration meaning that long before
// now.
func pastTime(v string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err == nil {
		return t, nil
	}
	d, derr := time.ParseDuration(v)
	if derr != nil || d <= 0 {
		return time.Time{}, err
	}
	return now.Add(-d), nil
}
