package agent

import (
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestCleanOutgoing: what the server would refuse for a control character
// (a newline of errors.Join, a tab in a hold file, an ESC in the
// supervisor's reason) is sent as printable text, and the caller's values
// are left alone.
func TestCleanOutgoing(t *testing.T) {
	unsafe := func(s string) bool { return strings.IndexFunc(s, protocol.Unsafe) >= 0 }
	holds := []string{"maintenance\twindow"}
	st := protocol.Status{Name: "n\x1b[2J", Hostname: "h", Holds: holds, Labels: map[string]string{"k": "a\nb"},
		LastResult: &protocol.TrialResult{Reason: "one\ntwo", Supervisor: &protocol.SupervisorResult{Reason: "\x1b]0;x\x07"}}}
	cleanStatus(&st)
	for _, s := range []string{st.Name, st.Holds[0], st.Labels["k"], st.LastResult.Reason, st.LastResult.Supervisor.Reason} {
		if unsafe(s) {
			t.Errorf("status still has %q", s)
		}
	}
	if holds[0] != "maintenance\twindow" {
		t.Errorf("the caller's holds were changed: %q", holds[0])
	}
	r := protocol.ReportRequest{OrderID: "d-1", Steps: []protocol.Step{{Name: "verify", Detail: "a\nb"}}, End: &protocol.End{Reason: "x\u202ey"}}
	cleanReport(&r)
	if unsafe(r.Steps[0].Detail) || unsafe(r.End.Reason) || r.Steps[0].Name != "verify" {
		t.Errorf("report: %+v %+v", r.Steps, r.End)
	}
	e := protocol.EnrollRequest{Name: "a\x00b", Hostname: "plain"}
	cleanEnroll(&e)
	if unsafe(e.Name) || e.Hostname != "plain" {
		t.Errorf("enroll: %+v", e)
	}
}
