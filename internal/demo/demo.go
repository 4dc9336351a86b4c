// Package demo is "molt demo": on one machine, from the repository, it
// builds three releases of molt, each carrying the operator's own agent
// (examples/exporter) as a workload, the third with a workload that never
// becomes ready; it signs them, starts a control server and three agent
// homes as real processes on loopback, and walks through what an operator
// sees: the agents enrolling with their exporters running, an upgrade run
// with a concurrency limit that upgrades the exporters too, the
// supervisors upgrading themselves, the broken release rolled back by the
// supervisors because of its workload, and the resulting tables.
//
// The operator's steps are the molt CLI itself, run as a user would type
// it, so the demo shows the real commands and their real output.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/apiclient"
)

// The versions the demo moves between. BadVersion's molt-agent is as
// healthy as the others; its workload, the exporter, never becomes ready
// (-fail-ready in its pack.yaml).
const (
	OldVersion = "1.0.0"
	NewVersion = "1.1.0"
	BadVersion = "1.2.0"
)

// releases are the versions built and packed, in order.
var releases = []string{OldVersion, NewVersion, BadVersion}

// Options configure one demo.
type Options struct {
	// Dir is where the demo's temporary directory is made (default: the
	// system's temporary directory).
	Dir string
	// Keep leaves the directory (binaries, packs, key, server data, homes,
	// logs) in place and prints how to pick it up again.
	Keep bool
	// Hold leaves the fleet running once the story ends, for the reader to
	// explore in the console and the CLI, until ctx ends (Ctrl-C); then
	// everything stops as usual. molt demo --keep sets it with Keep.
	Hold bool
	// Verbose copies the processes' logs to Stdout as they are written.
	Verbose bool
	// LogLevel of the server, supervisors and agents (default info).
	LogLevel string
	// WorkDir is where the repository is looked for (default: the working
	// directory).
	WorkDir string
	// Stdout gets the story; Stderr the CLI's progress and errors. Both
	// may be the same writer.
	Stdout, Stderr io.Writer
	// Hurry, when closed (a second ^C), turns the graceful stop of what
	// still runs into a kill.
	Hurry <-chan struct{}
	// Log is for the demo's own diagnostics (nil: none).
	Log *zap.Logger
}

// Timing of the hosts' supervisors: a short watch keeps the demo quick.
// The broken release fails by its workload's ready check (within
// workloadReadyWithin), not by crashes; a crash budget of 1 keeps a crash
// of anything under trial from dragging on.
const (
	trialWatch   = 3 * time.Second
	readyTimeout = 20 * time.Second
	stopGrace    = 5 * time.Second
	crashBudget  = 1
	// pollSeconds is the server's long poll: orders wake a waiting
	// check-in at once, so this only bounds how stale "last seen" gets.
	pollSeconds = 5
)

// demo is one run of the demo and everything it started.
type demo struct {
	o     Options
	held  bool      // the story ended and the fleet was left running (Options.Hold)
	out   io.Writer // o.Stdout, serialized with the log tailer
	mu    sync.Mutex
	root  string
	dir   string
	bin   string // built binaries: molt, and <version>/<goos>_<goarch>/...
	molt  string
	env   []string // the caller's environment without MOLT_*
	ps    *procs
	tail  *tailer
	keys  keys
	packs map[string]string

	server  *proc
	addr    string
	data    string
	cliConf string
	client  *apiclient.Client
	hosts   []*host
	badRun  string
}

// host is one agent home and the process that runs it.
type host struct {
	name       string
	home       string
	supervised bool
	proc       *proc
	id         string
	// exporter is the address its exporter listens on (data/exporter/listen).
	exporter string
}

// Run runs the demo to its end. Whatever it started is stopped before it
// returns, and its directory is removed unless Options.Keep.
func Run(ctx context.Context, o Options) (err error) {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = o.Stdout
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	wd := o.WorkDir
	if wd == "" {
		if wd, err = os.Getwd(); err != nil {
			return err
		}
	}
	root, err := FindModuleRoot(wd)
	if err != nil {
		return err
	}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return fmt.Errorf("--dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(o.Dir, "molt-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	d := &demo{o: o, root: root, dir: dir, bin: filepath.Join(dir, "bin"), env: cleanEnv(os.Environ())}
	d.out = lockedWriter{w: o.Stdout, mu: &d.mu}
	d.molt = filepath.Join(d.bin, "molt"+exeSuffix())
	d.ps = &procs{log: o.Log, env: d.env, hurry: o.Hurry}
	d.data = filepath.Join(dir, "server")

	tailCtx, stopTail := context.WithCancel(context.Background())
	tailDone := make(chan struct{})
	if o.Verbose {
		d.tail = newTailer(o.Stdout, &d.mu)
		go func() {
			defer close(tailDone)
			_ = d.tail.Run(tailCtx)
		}()
	} else {
		close(tailDone)
	}
	start := time.Now()
	defer func() {
		if d.held {
			d.say("\nStopping everything the demo started.")
		} else if ctx.Err() != nil {
			d.say("\nInterrupted: stopping everything the demo started (^C again to kill at once).")
		}
		d.ps.stopAll(d.server, stopGrace+2*time.Second)
		stopTail()
		<-tailDone
		if err == nil {
			d.say("\nEverything the demo started has stopped. It took %s.", time.Since(start).Round(100*time.Millisecond))
		}
		switch {
		case o.Keep && err == nil:
			d.say("\nKept %s.", dir)
			d.nextSteps()
			return
		case o.Keep || (err != nil && ctx.Err() == nil && d.server != nil):
			// A failure's logs are what its reader needs next.
			d.say("\nKept %s for its logs: %s, %s. Remove it with: rm -rf %s",
				dir, filepath.Join(dir, "logs"), filepath.Join(dir, "homes", "*", "logs"), dir)
			return
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, rmErr))
			return
		}
		if err == nil {
			d.say("Removed %s.\n\nTo explore the fleet yourself afterwards: go run ./cmd/molt demo --keep", dir)
		}
	}()
	if err := d.run(ctx); err != nil {
		return err
	}
	if o.Hold {
		return d.hold(ctx)
	}
	return nil
}

func (d *demo) run(ctx context.Context) error {
	d.say("molt demo: a control server and three agent homes on this machine, in %s", d.dir)
	if err := d.build(ctx); err != nil {
		return err
	}
	if err := d.startServer(ctx); err != nil {
		return err
	}
	if err := d.enroll(ctx); err != nil {
		return err
	}
	if err := d.upgrade(ctx); err != nil {
		return err
	}
	if err := d.broken(ctx); err != nil {
		return err
	}
	return d.tables(ctx)
}

// say prints one paragraph of the story.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

// section starts a numbered part of the story.
func (d *demo) section(format string, args ...any) {
	d.say("\n== "+format, args...)
}

// lockedWriter serializes the story with the log tailer's lines.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cleanEnv drops MOLT_* variables: an operator's MOLT_SERVER or
// MOLT_TOKEN must not point the demo's agents or CLI at a real server.
func cleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(strings.ToUpper(kv), "MOLT_") {
			out = append(out, kv)
		}
	}
	return out
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// freeAddr picks a loopback address nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitFor polls cond every 250 ms until it holds, ctx ends, d passes, or
// a process the demo depends on exits.
func (d *demo) waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if p := d.deadProcess(); p != nil {
			return fmt.Errorf("%s: %s exited (%v); its log: %s\n%s", what, p.name, p.err, p.log, tailOf(p.log, 20))
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not after %s: %w", what, limit, last)
			}
			return fmt.Errorf("%s: not after %s", what, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deadProcess returns a process that should run and does not.
func (d *demo) deadProcess() *proc {
	if d.server != nil && d.server.exited() {
		return d.server
	}
	for _, h := range d.hosts {
		if h.proc != nil && h.proc.exited() {
			return h.proc
		}
	}
	return nil
}

// tailOf returns the last n lines of a file.
func tailOf(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
