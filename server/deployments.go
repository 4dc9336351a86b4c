package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/moltfleet/molt/protocol"
)

const depColumns = `id, run_id, agent_id, agent_name, platform, kind, from_version, target, revert, state, reason, workload, done, total, created, started, ended, updated, wave, canary`

func scanDeployment(sc interface{ Scan(...any) error }) (protocol.Deployment, error) {
	var d protocol.Deployment
	var id, run, created, started, ended, updated int64
	err := sc.Scan(&id, &run, &d.AgentID, &d.AgentName, &d.Platform, &d.Kind, &d.From, &d.Target, &d.Revert, &d.State, &d.Reason, &d.Workload, &d.Done, &d.Total, &created, &started, &ended, &updated, &d.Wave, &d.Canary)
	d.ID, d.RunID = depID(id), runID(run)
	d.Created, d.Started, d.Ended, d.Updated = fromNanos(created), fromNanos(started), fromNanos(ended), fromNanos(updated)
	return d, err
}

func (s *Server) queryDeployments(ctx context.Context, where string, args []any, limit int, newestFirst bool) ([]protocol.Deployment, error) {
	order := "id"
	if newestFirst {
		order = "id DESC"
	}
	q := `SELECT ` + depColumns + ` FROM deployments`
	if where != "" {
		q += ` WHERE ` + where
	}
	q += ` ORDER BY ` + order + ` LIMIT ?`
	return scanDeployments(ctx, s.st.Reader(), q, append(args, limit)...)
}

// scanDeployments runs q, a SELECT of depColumns, on db.
func scanDeployments(ctx context.Context, db querier, q string, args ...any) ([]protocol.Deployment, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []protocol.Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Server) loadDeployment(ctx context.Context, ref string) (protocol.Deployment, int64, error) {
	id, ok := parseID(ref, "d-")
	if !ok {
		return protocol.Deployment{}, 0, notFound("no deployment %q (ids look like d-3)", ref)
	}
	deps, err := s.queryDeployments(ctx, "id = ?", []any{id}, 1, false)
	if err != nil {
		return protocol.Deployment{}, 0, err
	}
	if len(deps) == 0 {
		return protocol.Deployment{}, 0, notFound("no deployment %s", ref)
	}
	return deps[0], id, nil
}

func (s *Server) handleDeploymentShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	d, id, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	rows, err := s.st.Reader().QueryContext(r.Context(), `SELECT at, name, detail FROM steps WHERE deployment_id = ? ORDER BY at, seq`, id)
	if err != nil {
		return err
	}
	defer rows.Close()
	rep := protocol.DeploymentReport{Deployment: d, Steps: []protocol.Step{}}
	for rows.Next() {
		var st protocol.Step
		var at int64
		if err := rows.Scan(&at, &st.Name, &st.Detail); err != nil {
			return err
		}
		st.At = fromNanos(at)
		rep.Steps = append(rep.Steps, st)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	writeJSON(w, 200, rep)
	return nil
}

func (s *Server) handleDeploymentSkip(w http.ResponseWriter, r *http.Request, c caller) error {
	_, id, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	var d *depRec
	for _, o := range s.open {
		if o.ID == id {
			d = o
		}
	}
	if d == nil || !protocol.Queued(d.State) {
		s.mu.Unlock()
		state := "ended"
		if d != nil {
			state = d.State
		} else if dd, _, err := s.loadDeployment(r.Context(), r.PathValue("id")); err == nil {
			state = dd.State
		}
		return conflict("deployment %s is %s: only a deployment the agent has not started (pending, waiting_for_host, waiting_for_window) can be skipped", depID(id), state)
	}
	a := s.agents[d.AgentID]
	err = s.change(r.Context(), func(wr *writer) error {
		if err := wr.event(event{ID: protocol.EvSkippedByOperator, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("deployment %s skipped by %s", depID(d.ID), tokenName(c))}); err != nil {
			return err
		}
		// A skipped agent is not repaired back to an older target.
		if a != nil && a.Desired != "" {
			if err := wr.setDesired(a, ""); err != nil {
				return err
			}
		}
		return wr.setState(d, protocol.StateSkipped, "skipped by operator "+tokenName(c))
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	dd, _, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, dd)
	return nil
}
