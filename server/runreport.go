package server

import (
	"net/http"

	"github.com/moltfleet/molt/protocol"
)

func (s *Server) handleRunReport(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	run, err := s.loadRun(r.Context(), s.st.r, id)
	if err != nil {
		return err
	}
	deps, err := s.queryDeployments(r.Context(), "run_id = ?", []any{id}, 100000, false)
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.RunReport{Run: run, Deployments: deps})
	return nil
}
