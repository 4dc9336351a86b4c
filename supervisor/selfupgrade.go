package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor/control"
	"github.com/moltfleet/molt/updater/pack"
)

// maxCheckOutput bounds what a staged supervisor may print when checked.
const maxCheckOutput = 64 << 10

// selfUpgrade runs after a commit. When the committed version carries a
// molt-supervisor of another version than this one (newer, or older on a
// revert), it is checked (version --json, selftest; CheckTimeout each),
// installed over the running binary (the old one kept as .old) and
// started: in place on Unix with the agent adopted; on Windows Run returns
// ErrRestart after stopping the agent once it is not busy. A staged supervisor that fails its
// check is not installed; result.json and the log say why.
func (s *Supervisor) selfUpgrade(ctx context.Context, a *agent) error {
	staged := s.h.StagedSupervisor(a.version)
	if _, err := os.Stat(staged); err != nil {
		return nil
	}
	to, err := stagedVersion(ctx, staged)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		s.refuse("", fmt.Sprintf("%s: version --json: %v", staged, err))
		return nil
	}
	if to == s.cfg.Version {
		return nil
	}
	if err := s.ownBinary(); err != nil {
		s.refuse(to, err.Error())
		return nil
	}
	return s.install(ctx, a, staged, to)
}

// resumeSelfUpgrade runs once when the supervisor starts, after its agent
// was started: a self-upgrade that a kill -9, a crash or a power cut
// interrupted between the commit and the swap (the new binary prepared
// beside the old one, or not yet) is carried out as after the commit.
// Without it the host would run the new agent under the old supervisor
// until the next upgrade. A trial in progress is left to its commit; a
// staged supervisor that result.json records as refused by this version
// is not tried again until the next commit, so a bad one costs one check,
// not one per start.
func (s *Supervisor) resumeSelfUpgrade(ctx context.Context, a *agent, act home.Active) error {
	if act.Trial != nil || act.Current != a.version || !s.h.IsValid(a.version) {
		return nil
	}
	staged := s.h.StagedSupervisor(a.version)
	if _, err := os.Stat(staged); err != nil {
		return nil
	}
	if err := s.ownBinary(); err != nil {
		// Run by hand from elsewhere: not this home's service, and no
		// reason to record a refusal at every such start.
		s.log.Debug("not checking the staged supervisor", zap.Error(err))
		return nil
	}
	prior := s.refusedBefore()
	if prior != nil && prior.To == "" {
		s.log.Info("the staged supervisor was refused before; not checked again until the next upgrade",
			zap.String("staged", staged), zap.String("reason", prior.Reason))
		return nil
	}
	to, err := stagedVersion(ctx, staged)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		s.refuse("", fmt.Sprintf("%s: version --json: %v", staged, err))
		return nil
	}
	if to == s.cfg.Version {
		return nil
	}
	if prior != nil && prior.To == to {
		s.log.Info("the staged supervisor was refused before; not checked again until the next upgrade",
			zap.String("from", s.cfg.Version), zap.String("to", to), zap.String("reason", prior.Reason))
		return nil
	}
	// A program that says another version than it runs as would
	// otherwise be installed over itself at every start.
	if same, err := sameContent(s.cfg.Executable, staged); err != nil || same {
		s.log.Warn("the staged supervisor is already installed; not installing it again",
			zap.String("to", to), zap.String("running", s.cfg.Version), zap.Error(err))
		return nil
	}
	select {
	case <-a.done:
		// Nothing to adopt; the next start checks again.
		return nil
	default:
	}
	s.log.Info("a self-upgrade was not finished; resuming it", zap.String("from", s.cfg.Version), zap.String("to", to),
		zap.String("agent_version", a.version))
	return s.install(ctx, a, staged, to)
}

// refusedBefore returns result.json's supervisor outcome when it is a
// refusal by this version, else nil.
func (s *Supervisor) refusedBefore() *home.SupervisorResult {
	r, ok, err := s.h.ReadResult()
	if err != nil || !ok {
		return nil
	}
	if sr := r.Supervisor; sr != nil && !sr.Upgraded && sr.From == s.cfg.Version {
		return sr
	}
	return nil
}

// stagedVersion asks a staged supervisor for its version.
func stagedVersion(ctx context.Context, staged string) (string, error) {
	out, err := runCheck(ctx, staged, "version", "--json")
	var info buildinfo.Info
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err == nil && !pack.ValidVersion(info.Version) {
		err = fmt.Errorf("version %q is not a version", info.Version)
	}
	return info.Version, err
}

// install runs the staged supervisor's selftest, replaces the running
// binary with it and restarts into it.
func (s *Supervisor) install(ctx context.Context, a *agent, staged, to string) error {
	s.log.Info("checking the staged supervisor", zap.String("from", s.cfg.Version), zap.String("to", to))
	if out, err := runCheck(ctx, staged, "selftest", "--home", s.h.Dir); err != nil {
		if ctx.Err() != nil {
			// Stopping: no verdict on the staged supervisor.
			return nil
		}
		s.refuse(to, fmt.Sprintf("selftest failed: %v%s", err, firstLines(out)))
		return nil
	}
	old := s.cfg.Executable + ".old"
	if err := platform.ReplaceExecutable(s.cfg.Executable, staged, old); err != nil {
		s.refuse(to, fmt.Sprintf("install: %v", err))
		return nil
	}
	s.recordSupervisor(home.SupervisorResult{From: s.cfg.Version, To: to, Upgraded: true, At: s.clock.Now()})
	s.log.Info("supervisor binary replaced", zap.String("from", s.cfg.Version), zap.String("to", to),
		zap.String("path", s.cfg.Executable), zap.String("old", old))
	return s.restartSelf(ctx, a, to)
}

// sameContent reports whether the files at a and b hold the same bytes.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if sa.Size() != sb.Size() {
		return false, nil
	}
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// ownBinary checks that the running program is the home's
// bin/molt-supervisor: a supervisor started from elsewhere (by hand, from
// a build directory) must not overwrite that file.
func (s *Supervisor) ownBinary() error {
	want := s.h.SupervisorBinary()
	a, err1 := os.Stat(s.cfg.Executable)
	b, err2 := os.Stat(want)
	if s.cfg.Executable == "" || err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return fmt.Errorf("not installed: this supervisor runs from %q, not %s", s.cfg.Executable, want)
	}
	return nil
}

func (s *Supervisor) refuse(to, reason string) {
	s.log.Error("staged supervisor refused", zap.String("from", s.cfg.Version), zap.String("to", to), zap.String("reason", reason))
	s.recordSupervisor(home.SupervisorResult{From: s.cfg.Version, To: to, Reason: reason, At: s.clock.Now()})
}

// recordSupervisor adds the self-upgrade's outcome to result.json.
func (s *Supervisor) recordSupervisor(sr home.SupervisorResult) {
	r, _, err := s.h.ReadResult()
	if err != nil {
		s.log.Warn("read state/result.json", zap.Error(err))
	}
	r.Supervisor = &sr
	s.writeResult(r)
}

// runCheck runs a staged supervisor with a time limit and bounded output.
func runCheck(ctx context.Context, exe string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s", CheckTimeout)
	}
	return out.Bytes(), err
}

type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCheckOutput - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// firstLines renders a check's output for a one-line reason.
func firstLines(out []byte) string {
	s := strings.Join(strings.Fields(strings.TrimSpace(string(out))), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

// handoff is what the supervisor passes to its new image in EnvHandoff.
type handoff struct {
	PID     int                      `json:"pid"`
	ID      platform.ProcessIdentity `json:"id"`
	Version string                   `json:"version"`
	Started time.Time                `json:"started"`
	Ready   bool                     `json:"ready"`
	Busy    bool                     `json:"busy"`
	// Files are the descriptors of the channel (to, from the agent) and
	// of the agent's stdout and stderr.
	Files   [4]uintptr    `json:"files"`
	Backoff time.Duration `json:"backoff"`
	// Workloads are the running workloads, adopted like the agent.
	Workloads []workloadHandoff `json:"workloads,omitempty"`
}

// errStopAsked: a stop was asked for before the exec in place.
var errStopAsked = errors.New("the supervisor is stopping")

// restartSelf execs the new binary in place, keeping the agent: the
// channel and output pipes survive the exec and the agent stays this
// pid's child. Where exec in place is impossible it returns
// errRestartPending: the caller stops the agent (once it is not busy) and
// Run returns ErrRestart. When ctx ended (SIGTERM, SIGINT) it does not
// exec: the caller stops everything and the new binary runs from the
// next start.
func (s *Supervisor) restartSelf(ctx context.Context, a *agent, to string) error {
	if !platform.CanExecSelf {
		// Nothing to hand over: the workloads keep their output readers
		// until they are stopped with the agent.
		return errRestartPending
	}
	toAgent, fromAgent := a.ch.Files()
	files := []*os.File{toAgent, fromAgent, a.out, a.errOut}
	workloads, wfiles := s.wl.handoff()
	files = append(files, wfiles...)
	var err error
	for _, f := range files {
		if err = platform.KeepAcrossExec(f); err != nil {
			break
		}
	}
	if err == nil {
		h := handoff{PID: a.pid(), ID: a.id, Version: a.version, Started: a.started, Ready: a.ready, Busy: a.busy,
			Backoff: s.backoff, Workloads: workloads}
		for i, f := range files[:4] {
			h.Files[i] = f.Fd()
		}
		b, _ := json.Marshal(h)
		env := append(withoutEnv(os.Environ(), EnvHandoff), EnvHandoff+"="+string(b))
		s.log.Info("restarting in place into the new supervisor", zap.String("to", to), zap.Int("agent_pid", a.pid()))
		_ = s.log.Sync()
		faults.Point("supervisor/before-exec")
		// The stop signal is caught by this image (RunService's
		// NotifyContext) and only cancels ctx: the new image starts
		// with a context of its own and never hears of it. A SIGTERM
		// that came during the checks, the copy and its fsyncs would
		// be lost with an exec now, and the service manager's stop
		// would wait for its kill, which reaches neither the agent's
		// nor the workloads' process groups. So the last thing before
		// the exec is to look whether a stop was asked for; what
		// remains, the exec itself and the new image's start up to its
		// own signal.Notify (cmd/molt-supervisor run), is kept short.
		if ctx.Err() != nil {
			err = errStopAsked
		} else {
			err = platform.ExecSelf(s.cfg.Executable, s.cfg.Args, env)
		}
	}
	if errors.Is(err, platform.ErrNotSupported) {
		return errRestartPending
	}
	for _, f := range files {
		platform.DropAcrossExec(f)
	}
	s.wl.resume()
	reason := fmt.Sprintf("installed; restart in place failed (%v): runs from the next service start", err)
	if errors.Is(err, errStopAsked) {
		s.log.Info("stop asked for before the restart in place; the new supervisor runs from the next service start", zap.String("to", to))
		reason = "installed; not restarted in place because the supervisor was stopped: runs from the next service start"
	} else {
		s.log.Error("cannot restart into the new supervisor; it runs from the next service start", zap.Error(err))
	}
	r, _, _ := s.h.ReadResult()
	if r.Supervisor != nil {
		r.Supervisor.Reason = reason
		s.writeResult(r)
	}
	return nil
}

// adopt takes over the agent the previous image of this process ran.
func (s *Supervisor) adopt(spec string) (*agent, error) {
	var h handoff
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvHandoff, err)
	}
	if h.PID <= 0 || !pack.ValidVersion(h.Version) {
		return nil, fmt.Errorf("%s: no agent named", EnvHandoff)
	}
	names := []string{"control-to-agent", "control-from-agent", "agent-stdout", "agent-stderr"}
	var files [4]*os.File
	for i, fd := range h.Files {
		files[i] = platform.AdoptFile(fd, names[i])
	}
	proc, err := os.FindProcess(h.PID)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, fmt.Errorf("agent pid %d: %w", h.PID, err)
	}
	a := &agent{version: h.Version, id: h.ID, proc: proc, ch: control.Resume(files[0], files[1]),
		out: files[2], errOut: files[3], started: h.Started, ready: h.Ready, busy: h.Busy, done: make(chan struct{})}
	s.backoff = h.Backoff
	s.log.Info("adopted the running agent", zap.String("agent_version", a.version), zap.Int("pid", a.pid()))
	s.follow(a)
	s.wl.adopt(h.Workloads)
	return a, nil
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
