package server

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

var (
	platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+$`)
	labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
)

func checkString(field, v string, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return badRequest("%s is required", field)
	}
	if len(v) > protocol.MaxStringLen {
		return badRequest("%s is longer than %d bytes", field, protocol.MaxStringLen)
	}
	if strings.ContainsAny(v, "\x00\n\r") {
		return badRequest("%s contains a control character", field)
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	if len(labels) > protocol.MaxLabels {
		return badRequest("labels: more than %d", protocol.MaxLabels)
	}
	for k, v := range labels {
		if !labelKeyRe.MatchString(k) {
			return badRequest("label key %q: use letters, digits, '.', '_', '/', '-' (at most 63)", k)
		}
		if err := checkString("label "+k, v, false); err != nil {
			return err
		}
	}
	return nil
}

// checkStatus validates what an agent says about itself.
func checkStatus(st *protocol.Status) error {
	if st.ProtocolVersion < protocol.MinVersion {
		return errf(http.StatusUpgradeRequired, protocol.CodeProtocol, "protocol version %d is not supported (this server serves %d to %d): upgrade the agent by hand", st.ProtocolVersion, protocol.MinVersion, protocol.Version)
	}
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"fingerprint", st.Fingerprint, true}, {"name", st.Name, false}, {"hostname", st.Hostname, false},
		{"supervisor_version", st.SupervisorVersion, false}, {"cluster", st.Cluster, false}, {"floor", st.Floor, false},
	} {
		if err := checkString(f.name, f.v, f.required); err != nil {
			return err
		}
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
	for _, h := range st.Holds {
		if err := checkString("hold", h, true); err != nil {
			return err
		}
	}
	if st.FreeDiskBytes < 0 {
		return badRequest("free_disk_bytes is negative")
	}
	if u := st.Upgrade; u != nil {
		if err := checkString("upgrade.order_id", u.OrderID, true); err != nil {
			return err
		}
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
		if len(lr.Reason) > 4096 || len(lr.Logs) > 4096 || len(lr.WorkloadLogs) > 4096 {
			return badRequest("last_result: reason or logs longer than 4096 bytes")
		}
		if hasControl(lr.WorkloadLogs) {
			return badRequest("last_result.workload_logs contains a control character")
		}
	}
	return nil
}
