package server

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
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
	where, args, err := s.deploymentWhere(q)
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
	list, count := deploymentQueries(where)
	ctx := r.Context()
	deps, err := scanDeployments(ctx, s.st.Reader(), list, append(slices.Clone(args), limit, offset)...)
	if err != nil {
		return err
	}
	var total int
	if err := s.st.Reader().QueryRowContext(ctx, count, args...).Scan(&total); err != nil {
		return err
	}
	writeJSON(w, 200, protocol.Deployments{Deployments: deps, Total: total})
	return nil
}

// deploymentQueries are the page (its last two arguments limit and
// offset) and the count of the deployments matching where.
func deploymentQueries(where []string) (list, count string) {
	cond := ""
	if len(where) > 0 {
		cond = ` WHERE ` + strings.Join(where, " AND ")
	}
	return `SELECT ` + depColumns + ` FROM deployments` + cond + ` ORDER BY id DESC LIMIT ? OFFSET ?`,
		`SELECT COUNT(*) FROM deployments` + cond
}

// deploymentWhere turns the history's filters into SQL conditions:
// agent, run, state, kind and the time range since..until of the
// deployments' creation.
func (s *Server) deploymentWhere(q url.Values) ([]string, []any, error) {
	var where []string
	var args []any
	if v := q.Get("agent"); v != "" {
		s.mu.Lock()
		a, err := s.findAgent(v)
		s.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		where, args = append(where, "agent_id = ?"), append(args, a.ID)
	}
	if v := q.Get("run"); v != "" {
		id, ok := parseID(v, "r-")
		if !ok {
			return nil, nil, badRequest("run %q is not a run id like r-3", v)
		}
		where, args = append(where, "run_id = ?"), append(args, id)
	}
	if v := q.Get("state"); v != "" {
		if !slices.Contains(protocol.DeploymentStates, v) {
			return nil, nil, badRequest("state %q is not one of %s", v, strings.Join(protocol.DeploymentStates, ", "))
		}
		where, args = append(where, "state = ?"), append(args, v)
	}
	if v := q.Get("kind"); v != "" {
		if !slices.Contains(deploymentKinds, v) {
			return nil, nil, badRequest("kind %q is not one of %s", v, strings.Join(deploymentKinds, ", "))
		}
		where, args = append(where, "kind = ?"), append(args, v)
	}
	now := s.clock.Now()
	for _, b := range timeBounds {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		t, err := pastTime(v, now)
		if err != nil {
			return nil, nil, badRequest("%s: %q is neither an RFC 3339 time nor a duration like 24h", b.name, v)
		}
		where, args = append(where, b.cond), append(args, nanos(t), nanos(t))
	}
	return where, args, nil
}

// timeBounds are the conditions of since and until, each with its time
// twice. The page is read newest id first, so a bare condition on created
// would walk every newer deployment (until) or, when few match, every one
// (since); the id bound, taken from the created index, starts and ends
// that walk where the matches are. It narrows nothing (a clock set back
// leaves created out of id order, and the condition on created decides).
var timeBounds = []struct{ name, cond string }{
	{"since", "created >= ? AND id >= (SELECT MIN(id) FROM deployments INDEXED BY deployments_created WHERE created >= ?)"},
	{"until", "created < ? AND id <= (SELECT MAX(id) FROM deployments INDEXED BY deployments_created WHERE created < ?)"},
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
