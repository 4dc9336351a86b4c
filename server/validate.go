package server

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

var (
	platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+$`)
	labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
)

// maxTextLen bounds the free texts an agent sends: step details, reasons
// and log paths (docs/api.md). Other strings are bounded by
// protocol.MaxStringLen.
const maxTextLen = 4096

// text is one string a client sent, with the name a refusal gives it.
type text struct {
	field    string
	v        string
	limit    int // bytes
	required bool
}

// checkText is the one check of every string a client sends: required,
// at most limit bytes, and without a character a terminal acts on
// (protocol.Unsafe). Agent strings end up in the operator's terminal,
// events, hooks and /metrics; an agent may be hostile, so an ESC, a
// newline or a bidi override is refused, never stored.
func checkText(t text) error {
	if t.required && strings.TrimSpace(t.v) == "" {
		return badRequest("%s is required", t.field)
	}
	if len(t.v) > t.limit {
		return badRequest("%s is longer than %d bytes", t.field, t.limit)
	}
	if i := strings.IndexFunc(t.v, protocol.Unsafe); i >= 0 {
		r, _ := utf8.DecodeRuneInString(t.v[i:])
		return badRequest("%s contains the control character %U at byte %d: send printable text (no escape sequences, newlines, tabs or bidi overrides)", t.field, r, i)
	}
	return nil
}

func checkTexts(ts []text) error {
	for _, t := range ts {
		if err := checkText(t); err != nil {
			return err
		}
	}
	return nil
}

// str is a text bounded by protocol.MaxStringLen.
func str(field, v string) text { return text{field: field, v: v, limit: protocol.MaxStringLen} }

// checkString checks one string of at most protocol.MaxStringLen bytes.
func checkString(field, v string, required bool) error {
	return checkText(text{field: field, v: v, limit: protocol.MaxStringLen, required: required})
}

func checkLabels(labels map[string]string) error {
	if len(labels) > protocol.MaxLabels {
		return badRequest("labels: more than %d", protocol.MaxLabels)
	}
	// In key order, so the same request is refused with the same message.
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !labelKeyRe.MatchString(k) {
			return badRequest("label key %q: use letters, digits, '.', '_', '/', '-' (at most 63)", k)
		}
		if err := checkString("labels."+k, labels[k], false); err != nil {
			return err
		}
	}
	return nil
}

// statusTexts lists every string of a status, named as its JSON path.
func statusTexts(st *protocol.Status) []text {
	ts := []text{
		{field: "fingerprint", v: st.Fingerprint, limit: protocol.MaxStringLen, required: true},
		str("name", st.Name), str("hostname", st.Hostname), str("platform", st.Platform), str("os_family", st.OSFamily),
		str("version", st.Version), str("supervisor_version", st.SupervisorVersion), str("cluster", st.Cluster), str("floor", st.Floor),
	}
	for i, h := range st.Holds {
		ts = append(ts, text{field: fmt.Sprintf("holds[%d]", i), v: h, limit: protocol.MaxStringLen, required: true})
	}
	if u := st.Upgrade; u != nil {
		ts = append(ts, text{field: "upgrade.order_id", v: u.OrderID, limit: protocol.MaxStringLen, required: true},
			str("upgrade.version", u.Version), str("upgrade.phase", u.Phase))
	}
	if lr := st.LastResult; lr != nil {
		ts = append(ts, str("last_result.outcome", lr.Outcome), str("last_result.version", lr.Version), str("last_result.previous", lr.Previous),
			text{field: "last_result.reason", v: lr.Reason, limit: maxTextLen}, text{field: "last_result.logs", v: lr.Logs, limit: maxTextLen},
			str("last_result.order_id", lr.OrderID), str("last_result.workload", lr.Workload),
			text{field: "last_result.workload_logs", v: lr.WorkloadLogs, limit: maxTextLen})
		if s := lr.Supervisor; s != nil {
			ts = append(ts, str("last_result.supervisor.from", s.From), str("last_result.supervisor.to", s.To),
				text{field: "last_result.supervisor.reason", v: s.Reason, limit: maxTextLen})
		}
	}
	for i, w := range st.Workloads {
		f := func(name string) string { return fmt.Sprintf("workloads[%d].%s", i, name) }
		ts = append(ts, str(f("name"), w.Name), str(f("version"), w.Version), str(f("state"), w.State),
			text{field: f("last_exit"), v: w.LastExit, limit: maxWorkloadLastExit},
			text{field: f("reason"), v: w.Reason, limit: maxWorkloadReason})
	}
	return ts
}

// checkStatus validates what an agent says about itself.
func checkStatus(st *protocol.Status) error {
	if st.ProtocolVersion < protocol.MinVersion {
		return errf(http.StatusUpgradeRequired, protocol.CodeProtocol, "protocol version %d is not supported (this server serves %d to %d): upgrade the agent by hand", st.ProtocolVersion, protocol.MinVersion, protocol.Version)
	}
	if err := checkTexts(statusTexts(st)); err != nil {
		return err
	}
	if !platformRe.MatchString(st.Platform) {
		return badRequest("platform %q is not goos/goarch", st.Platform)
	}
	switch st.OSFamily {
	case protocol.FamilyLinux, protocol.FamilyWindows, protocol.FamilyUnix:
	default:
		return badRequest("os_family %q is not linux, windows or unix", st.OSFamily)
	}
	if !pack.ValidVersion(st.Version) {
		return badRequest("version %q is not a valid version", st.Version)
	}
	if err := checkLabels(st.Labels); err != nil {
		return err
	}
	if len(st.Holds) > protocol.MaxHolds {
		return badRequest("holds: more than %d", protocol.MaxHolds)
	}
	if st.FreeDiskBytes < 0 {
		return badRequest("free_disk_bytes is negative")
	}
	if st.AgentRestarts < 0 || st.AgentRestarts > maxWorkloadRestarts {
		return badRequest("agent_restarts %d is not from 0 to %d", st.AgentRestarts, maxWorkloadRestarts)
	}
	if u := st.Upgrade; u != nil {
		if u.Done < 0 || u.Total < 0 {
			return badRequest("upgrade progress is negative")
		}
	}
	if err := checkWorkloads(st.Workloads); err != nil {
		return err
	}
	if lr := st.LastResult; lr != nil {
		if lr.Workload != "" && !spec.ValidName(lr.Workload) {
			return badRequest("last_result.workload %q is not a workload name (1 to 32 of a-z 0-9 _ -)", lr.Workload)
		}
		if lr.Outcome != protocol.TrialCommitted && lr.Outcome != protocol.TrialRolledBack {
			return badRequest("last_result.outcome %q is not committed or rolled_back", lr.Outcome)
		}
	}
	return nil
}

// checkEnroll validates an enrollment; the status part is checked by
// checkStatus.
func checkEnroll(req *protocol.EnrollRequest) error {
	return checkText(text{field: "enrollment_token", v: req.EnrollmentToken, limit: protocol.MaxStringLen, required: true})
}

// checkReport validates a report: every string, the phase, the progress
// and the end.
func checkReport(req *protocol.ReportRequest) error {
	if len(req.Steps) > protocol.MaxReportSteps {
		return badRequest("steps: more than %d in one report", protocol.MaxReportSteps)
	}
	ts := []text{{field: "order_id", v: req.OrderID, limit: protocol.MaxStringLen, required: true}, str("phase", req.Phase)}
	for i, st := range req.Steps {
		ts = append(ts, text{field: fmt.Sprintf("steps[%d].name", i), v: st.Name, limit: protocol.MaxStringLen, required: true},
			text{field: fmt.Sprintf("steps[%d].detail", i), v: st.Detail, limit: maxTextLen})
	}
	if e := req.End; e != nil {
		ts = append(ts, str("end.outcome", e.Outcome), text{field: "end.reason", v: e.Reason, limit: maxTextLen}, str("end.version", e.Version))
	}
	if err := checkTexts(ts); err != nil {
		return err
	}
	if req.Phase != "" && protocol.PhaseRank(req.Phase) < protocol.PhaseRank(protocol.StateDownloading) {
		return badRequest("phase %q is not downloading, staged, restarting or watching", req.Phase)
	}
	if req.Done < 0 || req.Total < 0 {
		return badRequest("done and total must not be negative")
	}
	if e := req.End; e != nil {
		switch e.Outcome {
		case protocol.EndSucceeded, protocol.EndFailed, protocol.EndRolledBack:
		default:
			return badRequest("end.outcome %q is not succeeded, failed or rolled_back", e.Outcome)
		}
	}
	return nil
}
