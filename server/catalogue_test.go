package server

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// GET /v1/events/catalogue answers every event of protocol.EventCatalogue
// with its id, name and description, in lowercase JSON keys, to a viewer.
func TestEventCatalogueEndpoint(t *testing.T) {
	e := newEnv(t)
	var got protocol.Catalogue
	e.must("GET", "/v1/events/catalogue", protocol.RoleViewer, nil, &got)
	if diff := cmp.Diff(protocol.EventCatalogue, got.Events); diff != "" {
		t.Errorf("catalogue (-want +got):\n%s", diff)
	}
	req, _ := http.NewRequest("GET", e.hs.URL+"/v1/events/catalogue", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var raw struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || len(raw.Events) == 0 {
		t.Fatalf("body %q: %v", b, err)
	}
	first := raw.Events[0]
	if first["id"] != float64(protocol.EvUpgradeRequested) || first["name"] != "upgrade_requested" || first["description"] == "" {
		t.Errorf("first entry %v, want id 264, name upgrade_requested and a description", first)
	}
}
