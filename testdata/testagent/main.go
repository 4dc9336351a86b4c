// Command testagent stands in for molt-agent in the supervisor's tests and
// benchmark. Its behaviour is fixed when it is built:
//
//	go build -ldflags "-X main.mode=crash-after=2s \
//	  -X github.com/moltfleet/molt/internal/buildinfo.Version=1.1.0" \
//	  github.com/moltfleet/molt/testdata/testagent
//
// Modes: healthy (ready, then waits for stop), crash-at-start,
// never-ready, crash-after=D (ready, then exits 3 after D), exit0, exit10,
// exit11, exit12 (exit with that code at once), ignore-stop (ready, then
// ignores stop and SIGTERM), runs=D1,D2,... (the Nth start of this version
// in the home crashes after DN; starts beyond the list are healthy).
//
// In every mode that waits, SIGHUP (or the file testagent.exit11 in the
// home, where there is no SIGHUP) makes it exit 11, as an agent does after
// it switched active.json to a staged version. It appends what it does to
// $MOLT_HOME/testagent.events ("unixnano pid version event") so tests can
// see starts, readiness, stops and exits from outside.
//
// Asked "version --json" or "selftest" it answers like a supervisor whose
// self-test fails, so a test can stage it as a bad molt-supervisor.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/supervisor/control"
)

var mode = "healthy"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "version":
			info := buildinfo.Get("molt-supervisor")
			_ = json.NewEncoder(os.Stdout).Encode(info)
			return
		case "selftest":
			fmt.Fprintln(os.Stderr, "selftest: this build cannot run the home (test double)")
			os.Exit(1)
		}
	}
	os.Exit(run())
}

func run() int {
	event("start")
	fmt.Printf("testagent %s starting, mode %s\n", buildinfo.Version, mode)
	fmt.Fprintf(os.Stderr, "testagent %s: a line on stderr\n", buildinfo.Version)

	name, arg, _ := strings.Cut(mode, "=")
	switch name {
	case "crash-at-start":
		return exit(3, "crash")
	case "exit0":
		return exit(0, "exit")
	case "exit10":
		return exit(10, "exit")
	case "exit11":
		return exit(11, "exit")
	case "exit12":
		return exit(12, "exit")
	}

	ch, err := control.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "control channel:", err)
		return exit(3, "crash")
	}
	var stop <-chan struct{}
	if ch != nil {
		stop = ch.Stop()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)

	var crash <-chan time.Time
	switch name {
	case "crash-after":
		d, err := time.ParseDuration(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad mode:", mode)
			return exit(3, "crash")
		}
		crash = time.After(d)
	case "runs":
		if d, ok := runLifetime(arg); ok {
			crash = time.After(d)
		}
	case "ignore-stop":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	}
	if name != "never-ready" && ch != nil {
		if err := ch.Ready(); err != nil {
			return exit(3, "crash")
		}
		event("ready")
	}
	// The file testagent.exit11 in the home stands in for SIGHUP where
	// there is none (Windows): it is polled, removed, and exit 11 follows.
	trigger := filepath.Join(os.Getenv(control.EnvHome), "testagent.exit11")
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if os.Remove(trigger) == nil {
				return exit(11, "exit")
			}
		case <-stop:
			if name == "ignore-stop" {
				event("stop-ignored")
				stop = nil
				continue
			}
			return exit(0, "stop")
		case s := <-sig:
			if s == syscall.SIGHUP {
				return exit(11, "exit")
			}
			return exit(0, "stop")
		case <-crash:
			fmt.Fprintln(os.Stderr, "testagent: crashing as told")
			return exit(3, "crash")
		}
	}
}

// runLifetime picks this start's lifetime from the list: the number of
// earlier starts of this version recorded in the events file is the index.
func runLifetime(list string) (time.Duration, bool) {
	n := -1 // this start is already recorded
	if f, err := os.Open(eventsPath()); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[2] == buildinfo.Version && f[3] == "start" {
				n++
			}
		}
		f.Close()
	}
	items := strings.Split(list, ",")
	if n < 0 || n >= len(items) {
		return 0, false
	}
	d, err := time.ParseDuration(items[n])
	return d, err == nil
}

func exit(code int, what string) int {
	if what == "exit" || what == "crash" {
		what += "-" + strconv.Itoa(code)
	}
	event(what)
	return code
}

func eventsPath() string {
	return filepath.Join(os.Getenv(control.EnvHome), "testagent.events")
}

func event(what string) {
	f, err := os.OpenFile(eventsPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d %d %s %s\n", time.Now().UnixNano(), os.Getpid(), buildinfo.Version, what)
	f.Close()
}
