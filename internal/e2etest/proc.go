package e2etest

import (
	"os"
	"os/exec"
	"strings"
	"time"
)

// proc is a started process whose output goes to a log file and whose
// exit is collected in the background.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	werr error
}

// startProc starts argv in its own process group with env (cleanEnv when
// nil), stdout and stderr appended to log.
func startProc(log string, env []string, argv ...string) (*proc, error) {
	lf, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	if env == nil {
		env = cleanEnv()
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.werr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// err is the process's exit error, once it exited.
func (p *proc) err() error {
	<-p.done
	return p.werr
}

// exitCode is the exit code once it exited (-1 for a signal).
func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// wait waits up to d for the exit.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop asks the process to stop and kills its group if it has not after d.
func (p *proc) stop(d time.Duration) {
	if p.exited() {
		return
	}
	terminate(p.pid())
	if !p.wait(d) {
		p.kill9()
	}
}

// quit makes a Go process print its goroutines' stacks to its log and
// exit; it is killed if it has not within d.
func (p *proc) quit(d time.Duration) {
	if p.exited() {
		return
	}
	if !dumpStacks(p.pid()) || !p.wait(d) {
		p.kill9()
	}
}

// kill9 kills the process and its group and waits for the exit.
func (p *proc) kill9() {
	killGroup(p.pid())
	p.wait(10 * time.Second)
}

// cleanEnv is the test process's environment without MOLT_* variables,
// so that nothing of the developer's or CI's molt setup leaks into the
// processes under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOLT_") {
			env = append(env, kv)
		}
	}
	return env
}
