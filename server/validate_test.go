package server

import (
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// esc is what a hostile agent sends to take over the operator's terminal:
// it turns the rest of the screen red and moves the cursor.
const esc = "ok\x1b[31m\x1b[2Jred"

// TestAgentStringsRefuseControlCharacters puts a control character in
// every string an agent sends, one field at a time, and wants one 400
// naming that field.
func TestAgentStringsRefuseControlCharacters(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("host", "1.0.0")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	enroll := func() protocol.EnrollRequest {
		return protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll, Name: "n", Hostname: "h",
			Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Supervised: true, Fingerprint: "fp-new"}
	}
	status := func() protocol.Status {
		st := a.st
		st.Holds = []string{"maintenance"}
		st.Upgrade = &protocol.UpgradeProgress{OrderID: "d-1", Version: "2.0.0", Phase: protocol.StateDownloading}
		st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "2.0.0", Previous: "1.0.0", Reason: "r", Logs: "logs/a.log",
			OrderID: "d-1", At: at, Workload: "exporter", WorkloadLogs: "logs/w.log",
			Supervisor: &protocol.SupervisorResult{From: "1.0.0", To: "2.0.0", Reason: "r", At: at}}
		st.Workloads = []protocol.Workload{{Name: "exporter", Version: "1.0.0", State: protocol.WorkloadCrashed, LastExit: "exit 1", Reason: "r", Since: at}}
		return st
	}
	report := func() protocol.ReportRequest {
		return protocol.ReportRequest{OrderID: "d-1", Phase: protocol.StateDownloading,
			Steps: []protocol.Step{{At: at, Name: "download", Detail: "d"}, {At: at, Name: "verify", Detail: "v"}},
			End:   &protocol.End{Outcome: protocol.EndFailed, Reason: "r", Version: "1.0.0"}}
	}

	type tc struct {
		field string
		send  func() (path, cred string, body any)
	}
	var cases []tc
	enr := func(field string, set func(*protocol.EnrollRequest)) {
		cases = append(cases, tc{"enroll " + field, func() (string, string, any) {
			r := enroll()
			set(&r)
			return "/v1/agent/enroll", "", r
		}})
	}
	chk := func(field string, set func(*protocol.Status)) {
		cases = append(cases, tc{"checkin " + field, func() (string, string, any) {
			st := status()
			set(&st)
			return "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: st}
		}})
	}
	rep := func(field string, set func(*protocol.ReportRequest)) {
		cases = append(cases, tc{"report " + field, func() (string, string, any) {
			r := report()
			set(&r)
			return "/v1/agent/report", a.cred, r
		}})
	}

	enr("enrollment_token", func(r *protocol.EnrollRequest) { r.EnrollmentToken += "\x1b" })
	enr("name", func(r *protocol.EnrollRequest) { r.Name = esc })
	enr("hostname", func(r *protocol.EnrollRequest) { r.Hostname = esc })
	enr("platform", func(r *protocol.EnrollRequest) { r.Platform = "linux/amd64\x1b" })
	enr("os_family", func(r *protocol.EnrollRequest) { r.OSFamily = esc })
	enr("version", func(r *protocol.EnrollRequest) { r.Version = esc })
	enr("supervisor_version", func(r *protocol.EnrollRequest) { r.SupervisorVersion = esc })
	enr("labels.role", func(r *protocol.EnrollRequest) { r.Labels = map[string]string{"role": esc} })
	enr("cluster", func(r *protocol.EnrollRequest) { r.Cluster = esc })
	enr("fingerprint", func(r *protocol.EnrollRequest) { r.Fingerprint = esc })
	enr("floor", func(r *protocol.EnrollRequest) { r.Floor = esc })

	chk("fingerprint", func(s *protocol.Status) { s.Fingerprint += "\x1b" })
	chk("name", func(s *protocol.Status) { s.Name = esc })
	chk("hostname", func(s *protocol.Status) { s.Hostname = "h\u202egnp.exe" })
	chk("platform", func(s *protocol.Status) { s.Platform = esc })
	chk("os_family", func(s *protocol.Status) { s.OSFamily = esc })
	chk("version", func(s *protocol.Status) { s.Version = esc })
	chk("supervisor_version", func(s *protocol.Status) { s.SupervisorVersion = esc })
	chk("labels.role", func(s *protocol.Status) { s.Labels = map[string]string{"role": "a\tb"} })
	chk("cluster", func(s *protocol.Status) { s.Cluster = esc })
	chk("holds[0]", func(s *protocol.Status) { s.Holds = []string{esc} })
	chk("floor", func(s *protocol.Status) { s.Floor = esc })
	chk("upgrade.order_id", func(s *protocol.Status) { s.Upgrade.OrderID = esc })
	chk("upgrade.version", func(s *protocol.Status) { s.Upgrade.Version = esc })
	chk("upgrade.phase", func(s *protocol.Status) { s.Upgrade.Phase = esc })
	chk("last_result.outcome", func(s *protocol.Status) { s.LastResult.Outcome = esc })
	chk("last_result.version", func(s *protocol.Status) { s.LastResult.Version = esc })
	chk("last_result.previous", func(s *protocol.Status) { s.LastResult.Previous = esc })
	chk("last_result.reason", func(s *protocol.Status) { s.LastResult.Reason = "line one\nline two" })
	chk("last_result.logs", func(s *protocol.Status) { s.LastResult.Logs = esc })
	chk("last_result.order_id", func(s *protocol.Status) { s.LastResult.OrderID = esc })
	chk("last_result.workload", func(s *protocol.Status) { s.LastResult.Workload = esc })
	chk("last_result.workload_logs", func(s *protocol.Status) { s.LastResult.WorkloadLogs = esc })
	chk("last_result.supervisor.from", func(s *protocol.Status) { s.LastResult.Supervisor.From = esc })
	chk("last_result.supervisor.to", func(s *protocol.Status) { s.LastResult.Supervisor.To = esc })
	chk("last_result.supervisor.reason", func(s *protocol.Status) { s.LastResult.Supervisor.Reason = esc })
	chk("workloads[0].name", func(s *protocol.Status) { s.Workloads[0].Name = esc })
	chk("workloads[0].version", func(s *protocol.Status) { s.Workloads[0].Version = esc })
	chk("workloads[0].state", func(s *protocol.Status) { s.Workloads[0].State = esc })
	chk("workloads[0].last_exit", func(s *protocol.Status) { s.Workloads[0].LastExit = esc })
	chk("workloads[0].reason", func(s *protocol.Status) { s.Workloads[0].Reason = esc })

	rep("order_id", func(r *protocol.ReportRequest) { r.OrderID = "d-1\x1b" })
	rep("phase", func(r *protocol.ReportRequest) { r.Phase = esc })
	rep("steps[1].name", func(r *protocol.ReportRequest) { r.Steps[1].Name = esc })
	rep("steps[1].detail", func(r *protocol.ReportRequest) { r.Steps[1].Detail = esc })
	rep("end.outcome", func(r *protocol.ReportRequest) { r.End.Outcome = esc })
	rep("end.reason", func(r *protocol.ReportRequest) { r.End.Reason = "\u009b31m" })
	rep("end.version", func(r *protocol.ReportRequest) { r.End.Version = esc })

	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			path, cred, body := c.send()
			code, pe := e.do("POST", path, cred, body, nil)
			field := c.field[strings.IndexByte(c.field, ' ')+1:]
			if code != 400 || pe.Code != protocol.CodeBadRequest || !strings.HasPrefix(pe.Error, field+" contains the control character U+") {
				t.Errorf("%d %s: %q, want 400 naming %s", code, pe.Code, pe.Error, field)
			}
		})
	}

	// The same requests without the character are accepted: each case
	// failed for its field alone.
	for _, ok := range []func() (string, string, any){
		func() (string, string, any) { return "/v1/agent/enroll", "", enroll() },
		func() (string, string, any) {
			return "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: status()}
		},
	} {
		path, cred, body := ok()
		if code, pe := e.do("POST", path, cred, body, nil); code != 200 {
			t.Errorf("%s without a control character: %d %+v", path, code, pe)
		}
	}
	if code, pe := e.do("POST", "/v1/agent/report", a.cred, report(), nil); code == 400 {
		t.Errorf("report without a control character: %d %+v", code, pe)
	}
}
