package agent

import (
	"github.com/moltfleet/molt/protocol"
)

// The server refuses a request with a character a terminal acts on
// (protocol.Unsafe) in any string, naming the field. What this agent sends
// comes partly from elsewhere: error messages (errors.Join puts newlines
// in them), hold files, the supervisor's result.json, agent.yaml. So every
// free-text string is made printable before it is sent: a tab or a
// newline in an error must not cost the report that carries it, nor the
// check-in. Identifiers (ids, versions, platform) are left as they are:
// they are made here, and changing one would name something else.

// cleanEnroll makes the free texts of an enrollment printable.
func cleanEnroll(r *protocol.EnrollRequest) {
	r.Name = printable(r.Name, protocol.MaxStringLen)
	r.Hostname = printable(r.Hostname, protocol.MaxStringLen)
	r.Cluster = printable(r.Cluster, protocol.MaxStringLen)
	r.Labels = printableLabels(r.Labels)
}

// cleanStatus makes the free texts of a status printable; workloads are
// made printable when they are read (workloadsOf).
func cleanStatus(st *protocol.Status) {
	st.Name = printable(st.Name, protocol.MaxStringLen)
	st.Hostname = printable(st.Hostname, protocol.MaxStringLen)
	st.Cluster = printable(st.Cluster, protocol.MaxStringLen)
	st.Labels = printableLabels(st.Labels)
	if len(st.Holds) > 0 {
		hs := make([]string, len(st.Holds))
		for i, h := range st.Holds {
			hs[i] = printable(h, protocol.MaxStringLen)
		}
		st.Holds = hs
	}
	if lr := st.LastResult; lr != nil {
		c := *lr
		c.Reason = printable(c.Reason, maxText)
		c.Logs = printable(c.Logs, maxText)
		c.WorkloadLogs = printable(c.WorkloadLogs, maxText)
		if s := c.Supervisor; s != nil {
			sc := *s
			sc.Reason = printable(sc.Reason, maxText)
			c.Supervisor = &sc
		}
		st.LastResult = &c
	}
}

// cleanReport makes the steps' details and the end's reason printable.
func cleanReport(r *protocol.ReportRequest) {
	if len(r.Steps) > 0 {
		steps := make([]protocol.Step, len(r.Steps))
		for i, s := range r.Steps {
			s.Name = printable(s.Name, protocol.MaxStringLen)
			s.Detail = printable(s.Detail, maxText)
			steps[i] = s
		}
		r.Steps = steps
	}
	if e := r.End; e != nil {
		c := *e
		c.Reason = printable(c.Reason, maxText)
		r.End = &c
	}
}

// maxText bounds the free texts the server takes (step details, reasons).
const maxText = 4096

func printableLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return l
	}
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = printable(v, protocol.MaxStringLen)
	}
	return out
}
