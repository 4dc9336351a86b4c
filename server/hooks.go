package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
)

// hookJob is one hook command to run.
type hookJob struct {
	Name    string // hooks.on-deployment-end | hooks.on-run-end
	Command string
	Timeout time.Duration
	Env     []string
	Agent   string
	Run     int64
	Dep     int64
}

// hookRunner runs hooks on a few workers from a bounded queue, so a slow
// or hanging hook never holds up a run: a hook that does not fit in the
// queue is dropped and recorded as failed.
type hookRunner struct {
	s       *Server
	workers int
	q       chan hookJob
}

const hookQueue = 256

func newHookRunner(s *Server, workers int) *hookRunner {
	return &hookRunner{s: s, workers: workers, q: make(chan hookJob, hookQueue)}
}

func (h *hookRunner) enqueue(j hookJob) {
	if j.Command == "" {
		return
	}
	select {
	case h.q <- j:
	default:
		// Called with s.mu held (after a commit): record the drop later.
		go h.s.emit(context.Background(), event{ID: protocol.EvHookFailed, Agent: j.Agent, Run: j.Run, Dep: j.Dep,
			Msg: j.Name + " not run: the hook queue is full", Fields: map[string]string{"hook": j.Name, "reason": "queue full"}})
	}
}

func (h *hookRunner) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < h.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-h.q:
					h.exec(ctx, j)
				}
			}
		}()
	}
	wg.Wait()
}

// exec runs j and records its failure as an event. Output is bounded and
// logged.
func (h *hookRunner) exec(ctx context.Context, j hookJob) {
	argv, err := splitCommand(j.Command)
	if err == nil && len(argv) == 0 {
		err = errors.New("empty command")
	}
	var out bytes.Buffer
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, j.Timeout)
		cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
		// Only an allow-list of the server's environment (hookenv.go).
		cmd.Env = hookEnv(os.Environ(), j.Env)
		cmd.Stdout = &limitedBuffer{b: &out, n: 8 << 10}
		cmd.Stderr = cmd.Stdout
		cmd.WaitDelay = 2 * time.Second
		err = cmd.Run()
		if cctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", j.Timeout)
		}
		cancel()
	}
	log := h.s.log.With(zap.String("hook", j.Name), zap.String("command", j.Command), zap.String("output", out.String()))
	if err != nil {
		log.Warn("hook failed", zap.Error(err))
		h.s.emit(context.Background(), event{ID: protocol.EvHookFailed, Agent: j.Agent, Run: j.Run, Dep: j.Dep,
			Msg: fmt.Sprintf("%s failed: %v", j.Name, err), Fields: map[string]string{"hook": j.Name, "reason": err.Error()}})
		return
	}
	log.Info("hook ran")
	h.s.emit(context.Background(), event{ID: protocol.EvHookRan, Agent: j.Agent, Run: j.Run, Dep: j.Dep, Msg: j.Name + " ran", Fields: map[string]string{"hook": j.Name}})
}

type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

// deploymentHook builds the on-deployment-end hook for d. Call with s.mu
// held.
func (s *Server) deploymentHook(d *depRec, state string) hookJob {
	text, wave := "", ""
	if r := s.runs[d.RunID]; r != nil {
		text = r.Text
		if d.Wave < len(r.Waves) {
			wave = r.Waves[d.Wave].Name
		}
	}
	name := ""
	if a := s.agents[d.AgentID]; a != nil {
		name = a.St.Name
	}
	return hookJob{
		Name: "hooks.on-deployment-end", Command: s.settingLocked("hooks.on-deployment-end"), Timeout: s.durationSetting("hooks.timeout"),
		Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
		Env: []string{
			"MOLT_RUN_ID=" + runID(d.RunID), "MOLT_RUN_TEXT=" + text,
			"MOLT_AGENT=" + d.AgentID, "MOLT_AGENT_NAME=" + name,
			"MOLT_DEPLOYMENT_ID=" + depID(d.ID), "MOLT_DEPLOYMENT_STATUS=" + state,
			"MOLT_DEPLOYMENT_KIND=" + d.Kind, "MOLT_TARGET_VERSION=" + d.Target,
			// The run's wave of the deployment: its number and name
			// ("canary", "5%", "ring=early").
			"MOLT_WAVE=" + strconv.Itoa(d.Wave), "MOLT_WAVE_NAME=" + wave, "MOLT_CANARY=" + strconv.FormatBool(d.Canary),
		},
	}
}

// runHook builds the on-run-end hook. Call with s.mu held.
func (s *Server) runHook(r *runRec, status string) hookJob {
	return hookJob{
		Name: "hooks.on-run-end", Command: s.settingLocked("hooks.on-run-end"), Timeout: s.durationSetting("hooks.timeout"),
		Run: r.ID,
		Env: []string{"MOLT_RUN_ID=" + runID(r.ID), "MOLT_RUN_TEXT=" + r.Text, "MOLT_RUN_STATUS=" + status},
	}
}

// splitCommand splits a hook command into words the way a POSIX shell
// would for plain words, single and double quotes and backslashes, without
// any expansion: a hook that wants a shell names one (sh -c '...').
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
