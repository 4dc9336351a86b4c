// Command handoff runs the runner across a real exec in place, as the
// supervisor's self-upgrade does: the first image starts the test
// workload, waits for it to be ready, hands it off and execs itself; the
// second image adopts it, lets it run, stops it and prints the Exited
// event as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor/runner"
	"github.com/moltfleet/molt/workload/spec"
)

const envHandoff = "RUNNER_TEST_HANDOFF"

// usage: handoff HOME VERSION WORKLOAD_JSON
func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: handoff HOME VERSION WORKLOAD_JSON"))
	}
	var w spec.Workload
	if err := json.Unmarshal([]byte(os.Args[3]), &w); err != nil {
		fail(err)
	}
	cfg := runner.Config{Home: home.New(os.Args[1]), Version: os.Args[2], Workload: w, BaseEnv: os.Environ()}
	if h := os.Getenv(envHandoff); h != "" {
		second(cfg, h)
		return
	}
	i, err := runner.Start(cfg)
	if err != nil {
		fail(err)
	}
	if ev := <-i.Events(); ev.Kind != runner.Ready {
		fail(fmt.Errorf("first image: %v %s", ev.Kind, ev.Reason))
	}
	time.Sleep(200 * time.Millisecond)
	h, files := i.Handoff()
	for _, f := range files {
		if err := platform.KeepAcrossExec(f); err != nil {
			fail(err)
		}
	}
	b, _ := json.Marshal(h)
	exe, _ := os.Executable()
	env := append(os.Environ(), envHandoff+"="+string(b))
	fail(platform.ExecSelf(exe, os.Args, env))
}

func second(cfg runner.Config, spec string) {
	var h runner.Handoff
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		fail(err)
	}
	i, err := runner.Adopt(cfg, h)
	if err != nil {
		fail(err)
	}
	time.Sleep(300 * time.Millisecond)
	i.Stop()
	var last runner.Event
	for ev := range i.Events() {
		last = ev
	}
	out, _ := json.Marshal(struct {
		runner.Event
		Ready bool
		PID   int
	}{last, i.Ready(), os.Getpid()})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "handoff:", err)
	os.Exit(1)
}
