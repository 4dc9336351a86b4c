// Package control is the contract between molt-supervisor and the agent it
// runs: the exit codes, the environment the supervisor passes, and the
// line-based control channel over a pipe pair. The agent imports it to speak
// its half (Agent); the supervisor uses Channel for the other.
//
// Messages are single lines. The agent says "ready" (started, configuration
// and identity loaded), "busy" and "idle"; the supervisor says "stop".
package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/moltfleet/molt/platform"
)

// Exit codes of the agent, read by the supervisor.
const (
	// ExitStopped: stopped cleanly. Restarted after a short delay unless
	// the supervisor asked for the stop.
	ExitStopped = 0
	// ExitRestart: restart me at once, same version.
	ExitRestart = 10
	// ExitUpgrade: active.json names a staged version as current, in
	// trial; start it under watch.
	ExitUpgrade = 11
	// ExitBadConfig: the configuration is unusable; restart with a long
	// backoff.
	ExitBadConfig = 12
)

// Messages on the channel.
const (
	MsgReady = "ready"
	MsgBusy  = "busy"
	MsgIdle  = "idle"
	MsgStop  = "stop"
)

// Environment the supervisor gives the agent.
const (
	EnvSupervised        = "MOLT_SUPERVISED"
	EnvSupervisorVersion = "MOLT_SUPERVISOR_VERSION"
	EnvHome              = "MOLT_HOME"
	// EnvChannel is "R,W": the inherited file numbers (handles on Windows)
	// the agent reads messages from and writes messages to.
	EnvChannel = "MOLT_CONTROL"
)

// maxLine bounds one message.
const maxLine = 256

// Agent is the agent's half of the channel.
type Agent struct {
	r, w    *os.File
	mu      sync.Mutex
	stop    chan struct{}
	stopped sync.Once
}

// Supervised reports whether the process was started by molt-supervisor.
func Supervised() bool { return os.Getenv(EnvSupervised) == "1" }

// FromEnv opens the channel the supervisor passed. It returns (nil, nil)
// when the process is not supervised, so an agent run by hand works without.
func FromEnv() (*Agent, error) {
	spec := os.Getenv(EnvChannel)
	if spec == "" {
		return nil, nil
	}
	rs, ws, ok := strings.Cut(spec, ",")
	rid, err1 := strconv.ParseUint(rs, 10, 64)
	wid, err2 := strconv.ParseUint(ws, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%s=%q: want two file numbers, R,W", EnvChannel, spec)
	}
	a := &Agent{
		r:    platform.OpenInherited(uintptr(rid), "control-in"),
		w:    platform.OpenInherited(uintptr(wid), "control-out"),
		stop: make(chan struct{}),
	}
	go a.read()
	return a, nil
}

func (a *Agent) read() {
	sc := bufio.NewScanner(a.r)
	sc.Buffer(make([]byte, maxLine), maxLine)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == MsgStop {
			break
		}
	}
	// "stop", or the supervisor is gone (EOF): either way, stop. An agent
	// whose supervisor died must not linger as an orphan beside the one
	// the restarted supervisor starts.
	a.stopped.Do(func() { close(a.stop) })
}

// Stop is closed when the supervisor says "stop" or goes away.
func (a *Agent) Stop() <-chan struct{} { return a.stop }

// Send writes one message.
func (a *Agent) Send(msg string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := io.WriteString(a.w, msg+"\n")
	return err
}

// Ready, Busy and Idle send the corresponding message.
func (a *Agent) Ready() error { return a.Send(MsgReady) }
func (a *Agent) Busy() error  { return a.Send(MsgBusy) }
func (a *Agent) Idle() error  { return a.Send(MsgIdle) }

// Close closes both ends.
func (a *Agent) Close() error {
	return errors.Join(a.r.Close(), a.w.Close())
}

// Channel is the supervisor's half: Messages delivers what the agent says
// and is closed when the agent's end is closed (it exited).
type Channel struct {
	toAgent   *os.File // supervisor writes
	fromAgent *os.File // supervisor reads
	Messages  chan string
}

// Attach creates the pipe pair, hands the child's ends to cmd and sets
// EnvChannel in cmd.Env (which must already hold the rest of the
// environment). After cmd.Start the caller calls Started.
type Attachment struct {
	Channel    *Channel
	childRead  *os.File
	childWrite *os.File
}

// Attach prepares a channel for cmd.
func Attach(cmd *exec.Cmd) (*Attachment, error) {
	cr, sw, err := os.Pipe() // child reads, supervisor writes
	if err != nil {
		return nil, err
	}
	sr, cw, err := os.Pipe() // supervisor reads, child writes
	if err != nil {
		cr.Close()
		sw.Close()
		return nil, err
	}
	ids, err := platform.InheritFiles(cmd, cr, cw)
	if err != nil {
		for _, f := range []*os.File{cr, sw, sr, cw} {
			f.Close()
		}
		return nil, err
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d,%d", EnvChannel, ids[0], ids[1]))
	return &Attachment{
		Channel:    &Channel{toAgent: sw, fromAgent: sr, Messages: make(chan string, 16)},
		childRead:  cr,
		childWrite: cw,
	}, nil
}

// Started closes the child's ends in this process (the child has its own)
// and starts reading messages. Call it after cmd.Start, also when Start
// failed (then close the Channel).
func (a *Attachment) Started() *Channel {
	a.childRead.Close()
	a.childWrite.Close()
	go a.Channel.read()
	return a.Channel
}

// Resume rebuilds a channel from the supervisor's ends after an in-place
// exec of the supervisor (files kept open across exec).
func Resume(toAgent, fromAgent *os.File) *Channel {
	c := &Channel{toAgent: toAgent, fromAgent: fromAgent, Messages: make(chan string, 16)}
	go c.read()
	return c
}

// Files returns the supervisor's ends (to keep them across an exec).
func (c *Channel) Files() (toAgent, fromAgent *os.File) { return c.toAgent, c.fromAgent }

func (c *Channel) read() {
	defer close(c.Messages)
	sc := bufio.NewScanner(c.fromAgent)
	sc.Buffer(make([]byte, maxLine), maxLine)
	for sc.Scan() {
		switch m := strings.TrimSpace(sc.Text()); m {
		case MsgReady, MsgBusy, MsgIdle:
			c.Messages <- m
		}
	}
}

// Stop asks the agent to stop.
func (c *Channel) Stop() error {
	_, err := io.WriteString(c.toAgent, MsgStop+"\n")
	return err
}

// Close closes the supervisor's ends.
func (c *Channel) Close() error {
	return errors.Join(c.toAgent.Close(), c.fromAgent.Close())
}
