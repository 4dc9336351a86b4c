package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// fuzzRoute feeds arbitrary bodies to one route of a real server: whatever
// the bytes, the answer is never a 500 and an error is the JSON error shape.
func fuzzRoute(f *testing.F, method, path string, auth func(e *env) string, seeds ...any) {
	e := newEnv(f)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("fuzz", "1.0.0")
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"})
	e.schedule()
	a.checkin()
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":1}{`))
	f.Add([]byte(`null`))
	tok := auth(e)
	if tok == "" {
		tok = a.cred
	}
	h := e.s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code >= 400 {
			var pe protocol.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &pe); err != nil || pe.Error == "" || pe.Code == "" {
				t.Fatalf("%d with a body that is not the error shape: %q", rec.Code, rec.Body)
			}
		}
	})
}

func agentCred(*env) string { return "" }
func adminToken(e *env) string {
	return e.tokens[protocol.RoleAdmin]
}

func FuzzEnroll(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/v1/agent/enroll", agentCred, protocol.EnrollRequest{ProtocolVersion: 1, Name: "x", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Fingerprint: "f"})
}

func FuzzCheckin(f *testing.F) {
	st := protocol.Status{ProtocolVersion: 1, Fingerprint: "fp-fuzz", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0",
		Upgrade: &protocol.UpgradeProgress{OrderID: "d-1", Phase: "downloading"}, LastResult: &protocol.TrialResult{Outcome: "committed", Version: "2.0.0", OrderID: "d-1"}}
	// Workloads: a healthy one, a crash-looping one (its events), and a
	// trial rolled back by a workload.
	wst := st
	wst.Upgrade = nil
	wst.Workloads = []protocol.Workload{
		{Name: "exporter", Version: "1.0.0", State: "ready", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Name: "sensor_2", Version: "1.0.0", State: "crashed", Restarts: 7, LastExit: "exit status 2", Reason: "GET http://127.0.0.1:9100/: refused"},
	}
	wst.LastResult = &protocol.TrialResult{Outcome: "rolled_back", Version: "2.0.0", Previous: "1.0.0", OrderID: "d-1", Workload: "exporter", Reason: "workload exporter did not pass its ready check within 30s"}
	fuzzRoute(f, http.MethodPost, "/v1/agent/checkin", agentCred, protocol.CheckinRequest{Status: st}, protocol.CheckinRequest{Status: wst})
}

func FuzzReport(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/v1/agent/report", agentCred,
		protocol.ReportRequest{OrderID: "d-1", Phase: "staged", Steps: []protocol.Step{{Name: "x"}}},
		protocol.ReportRequest{OrderID: "d-1", End: &protocol.End{Outcome: "rolled_back", Reason: "r"}},
		protocol.ReportRequest{OrderID: "c-1", End: &protocol.End{Outcome: "succeeded"}})
}

func FuzzRunCreate(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/v1/runs", adminToken,
		protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "latest", DryRun: true},
		protocol.RunRequest{Selection: protocol.Selection{Labels: map[string]string{"a": "b"}}, Target: "2.0.0", TargetFor: map[string]string{"linux/amd64": "latest"}})
}

func FuzzSettingSet(f *testing.F) {
	fuzzRoute(f, http.MethodPut, "/v1/settings/hooks.on-run-end", adminToken, protocol.SettingRequest{Value: "echo 'a b'"})
}

func FuzzTokenCreate(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/v1/tokens", adminToken, protocol.TokenRequest{Role: "viewer", Name: "n"})
}

func FuzzEnrollTokenCreate(f *testing.F) {
	fuzzRoute(f, http.MethodPost, "/v1/enroll-tokens", adminToken, protocol.EnrollTokenRequest{Uses: 3, ExpiresIn: 60})
}

func FuzzReleaseImport(f *testing.F) {
	f.Add(makePack(f, testKeySecret(), "3.0.0", "", "linux/amd64"))
	f.Add(makeTarPack(f, testKeySecret(), "3.0.1", "", "linux/amd64"))
	fuzzRoute(f, http.MethodPost, "/v1/releases", adminToken)
}

func testKeySecret() pack.SecretKey {
	_, sk := testKey()
	return sk
}
