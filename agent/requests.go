package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// DaemonInfo is state/daemon.json: present while a daemon runs.
type DaemonInfo struct {
	Pid int `json:"pid"`
	// Process recognises the daemon's process even after its pid was
	// reused (a daemon killed -9 leaves the file behind).
	Process           platform.ProcessIdentity `json:"process,omitzero"`
	Version           string                   `json:"version"`
	Started           time.Time                `json:"started"`
	Supervised        bool                     `json:"supervised"`
	SupervisorVersion string                   `json:"supervisor_version,omitempty"`
	AgentID           string                   `json:"agent_id,omitempty"`
}

// DaemonPath is where a running daemon announces itself.
func DaemonPath(h home.Home) string { return filepath.Join(h.StateDir(), "daemon.json") }

func (d *Daemon) daemonInfo() DaemonInfo {
	info := DaemonInfo{
		Pid: os.Getpid(), Version: d.o.Version, Started: d.o.Now().UTC(),
		Supervised: d.Supervised(), SupervisorVersion: d.o.SupervisorVersion,
		AgentID: d.Identity().ID,
	}
	if p, err := platform.IdentifyProcess(info.Pid); err == nil {
		info.Process = p
	}
	return info
}

func writeDaemonFile(h home.Home, info DaemonInfo) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return writeRunFile(DaemonPath(h), info, 0o644)
}

// removeDaemonFile removes state/daemon.json if it is still this
// process's (a second daemon started by hand must not erase the first's).
func removeDaemonFile(h home.Home) {
	var info DaemonInfo
	if readJSON(DaemonPath(h), &info) == nil && info.Pid == os.Getpid() {
		_ = os.Remove(DaemonPath(h))
	}
}

// RunningDaemon returns the daemon that runs for h, if any: state/daemon.json
// names a live process that is still the one that wrote it.
func RunningDaemon(h home.Home) (DaemonInfo, bool) {
	var info DaemonInfo
	if err := readJSON(DaemonPath(h), &info); err != nil {
		return info, false
	}
	if !platform.ProcessAlive(info.Pid) {
		return info, false
	}
	if info.Process.PID != info.Pid {
		return info, true // written where the process could not be identified
	}
	p, err := platform.IdentifyProcess(info.Pid)
	switch {
	case err == nil:
		return info, p.Same(info.Process)
	case errors.Is(err, platform.ErrNoProcess):
		return info, false
	}
	return info, true // cannot tell: assume it runs, the request times out if not
}

// Request is state/requests/<id>.json: a manual upgrade handed to the
// running daemon by "molt-agent upgrade".
type Request struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	// PackFile is an absolute path to a pack the requester verified.
	PackFile  string    `json:"pack_file"`
	Revert    bool      `json:"revert,omitempty"`
	Requested time.Time `json:"requested"`
	// Pid is the requesting process.
	Pid int `json:"pid"`
}

// Request states in RequestStatus.State.
const (
	RequestRunning  = "running"
	RequestSwitched = "switched"
	RequestFailed   = "failed"
)

// RequestStatus is state/requests/<id>.status, written by the daemon.
type RequestStatus struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Step and Detail are the last progress step.
	Step   string    `json:"step,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Done   int64     `json:"done,omitempty"`
	Total  int64     `json:"total,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// Final reports whether the daemon is done with the request.
func (s RequestStatus) Final() bool { return s.State == RequestSwitched || s.State == RequestFailed }

var requestIDRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^local-[0-9a-z-]{1,64}$`) })

const (
	maxStateFile = 64 << 10
	// staleRequest is the age after which request files nobody picked up
	// or collected are removed.
	staleRequest = 24 * time.Hour
)

// RequestsDir is state/requests.
func RequestsDir(h home.Home) string { return filepath.Join(h.StateDir(), "requests") }

// RequestPaths returns the file names of request id.
func RequestPaths(h home.Home, id string) (req, claimed, status string) {
	base := filepath.Join(RequestsDir(h), id)
	return base + ".json", base + ".claimed", base + ".status"
}

// SubmitRequest writes r for the daemon to claim.
func SubmitRequest(h home.Home, r Request) error {
	if !requestIDRe().MatchString(r.ID) {
		return fmt.Errorf("request id %q: invalid", r.ID)
	}
	if err := os.MkdirAll(RequestsDir(h), 0o755); err != nil {
		return err
	}
	req, _, _ := RequestPaths(h, r.ID)
	return atomicfile.WriteJSON(req, r, 0o644)
}

// WithdrawRequest removes a request the daemon has not claimed. It reports
// false when the daemon claimed it first.
func WithdrawRequest(h home.Home, id string) (bool, error) {
	req, _, _ := RequestPaths(h, id)
	err := os.Remove(req)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// RequestClaimed reports whether the daemon claimed request id.
func RequestClaimed(h home.Home, id string) bool {
	_, claimed, _ := RequestPaths(h, id)
	_, err := os.Stat(claimed)
	return err == nil
}

// ReadRequestStatus reads the daemon's progress on request id.
func ReadRequestStatus(h home.Home, id string) (RequestStatus, error) {
	var s RequestStatus
	_, _, status := RequestPaths(h, id)
	return s, readJSON(status, &s)
}

// CollectRequest removes the files of a finished request.
func CollectRequest(h home.Home, id string) {
	req, claimed, status := RequestPaths(h, id)
	for _, p := range []string{req, claimed, status} {
		_ = os.Remove(p)
	}
}

// serveRequests claims and runs local upgrade requests until ctx ends.
func (d *Daemon) serveRequests(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(d.o.Poll)
	defer t.Stop()
	var swept time.Time
	for {
		if now := d.o.Now(); now.Sub(swept) > time.Hour {
			d.removeStaleRequests()
			swept = now
		}
		for _, r := range d.claimRequests() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.runRequest(ctx, r)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Daemon) claimRequests() []Request {
	ents, err := os.ReadDir(RequestsDir(d.o.Home))
	if err != nil {
		return nil
	}
	var out []Request
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !requestIDRe().MatchString(id) {
			continue
		}
		req, claimed, _ := RequestPaths(d.o.Home, id)
		if err := os.Rename(req, claimed); err != nil {
			continue // withdrawn meanwhile
		}
		var r Request
		if err := readJSON(claimed, &r); err != nil || r.ID != id {
			d.writeRequestStatus(RequestStatus{ID: id, State: RequestFailed, Error: fmt.Sprintf("unreadable request: %v", err)})
			continue
		}
		out = append(out, r)
	}
	return out
}

func (d *Daemon) runRequest(ctx context.Context, r Request) {
	log := d.log.With(zap.String("request", r.ID), zap.String("target", r.Version))
	log.Info("local upgrade request", zap.String("pack", r.PackFile), zap.Int("requester_pid", r.Pid))
	st := RequestStatus{ID: r.ID, State: RequestRunning, Step: "claimed", Detail: "the agent took the request"}
	d.writeRequestStatus(st)
	var err error
	switch {
	case !pack.ValidVersion(r.Version):
		err = fmt.Errorf("invalid version %q", r.Version)
	case !filepath.IsAbs(r.PackFile):
		err = fmt.Errorf("pack path %q is not absolute", r.PackFile)
	default:
		err = d.RunOrder(ctx, Order{
			ID: r.ID, Version: r.Version, PackFile: r.PackFile, Revert: r.Revert,
			Progress: func(p Progress) {
				st.Step, st.Detail, st.Done, st.Total = p.Step, p.Detail, p.Done, p.Total
				d.writeRequestStatus(st)
			},
		})
	}
	if err != nil {
		st.State, st.Error = RequestFailed, err.Error()
		log.Warn("local upgrade request failed", zap.Error(err))
	} else {
		st.State, st.Step, st.Detail = RequestSwitched, "exit", "switched to "+r.Version+"; the agent restarts into it"
	}
	d.writeRequestStatus(st)
}

func (d *Daemon) writeRequestStatus(s RequestStatus) {
	s.At = d.o.Now().UTC()
	_, _, path := RequestPaths(d.o.Home, s.ID)
	if err := atomicfile.WriteJSON(path, s, 0o644); err != nil {
		d.log.Warn("request status", zap.String("request", s.ID), zap.Error(err))
	}
}

// removeStaleRequests removes request files left by requesters that went
// away long ago, so state/requests does not grow.
func (d *Daemon) removeStaleRequests() {
	ents, err := os.ReadDir(RequestsDir(d.o.Home))
	if err != nil {
		return
	}
	now := d.o.Now()
	for _, e := range ents {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > staleRequest {
			_ = os.Remove(filepath.Join(RequestsDir(d.o.Home), e.Name()))
		}
	}
}

// TrialResult converts state/result.json to its wire form.
func TrialResult(r home.Result) *protocol.TrialResult {
	t := &protocol.TrialResult{
		Outcome: r.Outcome, Version: r.Version, Previous: r.Previous, Reason: r.Reason,
		Logs: r.Logs, OrderID: r.Order, At: r.At,
	}
	if spec.ValidName(r.Workload) {
		t.Workload, t.WorkloadLogs = r.Workload, printable(r.WorkloadLogs, maxWorkloadReason)
	}
	if s := r.Supervisor; s != nil {
		t.Supervisor = &protocol.SupervisorResult{From: s.From, To: s.To, Upgraded: s.Upgraded, Reason: s.Reason, At: s.At}
	}
	return t
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxStateFile {
		return fmt.Errorf("%s: larger than %d bytes", filepath.Base(path), maxStateFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}
