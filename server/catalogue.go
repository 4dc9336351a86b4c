package server

import (
	"net/http"

	"github.com/moltfleet/molt/protocol"
)

// handleEventCatalogue answers GET /v1/events/catalogue: every event id
// with its name and meaning, so a client (the console's event filter)
// names events as this server does rather than from a copy that ages.
func (s *Server) handleEventCatalogue(w http.ResponseWriter, _ *http.Request, _ caller) error {
	writeJSON(w, http.StatusOK, protocol.Catalogue{Events: protocol.EventCatalogue})
	return nil
}
