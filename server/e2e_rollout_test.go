package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestKill9RolloutWaits kills a real molt serve with SIGKILL while a run
// waits on its own rules — for the promotion of its next wave, for its
// maintenance window, halted on a failed canary — and checks that after
// the restart it waits exactly as before: same status and reason, same
// wave and wave states, nothing more started; then that it goes on when
// released.
func TestKill9RolloutWaits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs molt serve")
	}
	// A window that is closed now and for the next hour.
	now := time.Now().UTC()
	closed := fmt.Sprintf("daily %s-%s UTC", now.Add(2*time.Hour).Format("15:04"), now.Add(3*time.Hour).Format("15:04"))
	for _, tc := range []struct {
		name     string
		controls protocol.RunControls
		// failing makes every agent's upgrade fail until released.
		failing bool
		// waiting is the state the run must reach before the kill.
		waiting func(r protocol.Run) bool
		// release lets the run go on after the restart ("" leaves it).
		release string
	}{
		{
			name:     "wave waits for promotion",
			controls: protocol.RunControls{Waves: []string{"50%", "100%"}, WaveApprove: true},
			waiting: func(r protocol.Run) bool {
				return len(r.WaveList) == 2 && r.WaveList[0].State == "approval"
			},
			release: "promote",
		},
		{
			name:     "deployments wait for their window",
			controls: protocol.RunControls{Window: closed},
			waiting: func(r protocol.Run) bool {
				return r.Counts[protocol.StateWaitingForWindow] == r.Total
			},
		},
		{
			name:     "halted on a failed canary",
			controls: protocol.RunControls{Canary: 1, CanarySoakSeconds: 1},
			failing:  true,
			waiting: func(r protocol.Run) bool {
				return r.Status == protocol.RunPaused && r.Counts[protocol.StateFailed] == 1
			},
			release: "resume",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			srv := startProc(t, data, freeAddr(t), "--poll-wait", "300ms")
			var mu sync.Mutex
			cur := func() *procServer { mu.Lock(); defer mu.Unlock(); return srv }
			// The server running at the end, whichever it is, stops with
			// the test (after the agents: deferred first, runs last).
			defer func() { cur().stop() }()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, sk := testKey()
			for _, v := range []string{"1.0.0", "2.0.0"} {
				if err := srv.call(ctx, "POST", "/v1/releases", srv.tok, makePack(t, sk, v, "", "linux/amd64"), nil); err != nil {
					t.Fatal(err)
				}
			}
			const n = 6
			agents := enrollMany(t, ctx, srv, n, "1.0.0")
			for _, a := range agents {
				a.fail = tc.failing
			}
			var wg sync.WaitGroup
			for _, a := range agents {
				wg.Add(1)
				go func() { defer wg.Done(); a.loop(ctx, cur) }()
			}
			defer wg.Wait()
			defer cancel()
			var run protocol.Run
			if err := srv.call(ctx, "POST", "/v1/runs", srv.tok, protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 10, RunControls: tc.controls}, &run); err != nil {
				t.Fatal(err)
			}
			get := func() protocol.Run {
				t.Helper()
				var r protocol.Run
				if err := cur().call(ctx, "GET", "/v1/runs/"+run.ID, cur().tok, nil, &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
			wait := func(cond func(protocol.Run) bool, what string) protocol.Run {
				t.Helper()
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if r := get(); cond(r) {
						return r
					}
				}
				t.Fatalf("timed out waiting for %s: %+v", what, get())
				return protocol.Run{}
			}
			wait(tc.waiting, "the run to wait")
			time.Sleep(1500 * time.Millisecond) // scheduler ticks: nothing more moves
			before := get()
			mu.Lock()
			srv.kill9()
			srv.start()
			mu.Unlock()
			time.Sleep(1500 * time.Millisecond) // the agents come back; the scheduler ticks
			after := get()
			same := func(r protocol.Run) string {
				var waves []string
				for _, w := range r.WaveList {
					waves = append(waves, w.State)
				}
				return fmt.Sprintf("status=%s reason=%q wave=%d waves=%v counts=%v", r.Status, r.Reason, r.Wave, waves, r.Counts)
			}
			if same(before) != same(after) {
				t.Fatalf("the run changed across kill -9:\n before %s\n after  %s", same(before), same(after))
			}
			if tc.release == "" {
				return
			}
			for _, a := range agents {
				a.mu.Lock()
				a.fail = false
				a.mu.Unlock()
			}
			if err := cur().call(ctx, "POST", "/v1/runs/"+run.ID+"/"+tc.release, cur().tok, nil, nil); err != nil {
				t.Fatal(err)
			}
			r := wait(func(r protocol.Run) bool { return r.Status != protocol.RunRunning && r.Status != protocol.RunPaused }, "the run to end")
			want := n
			if tc.failing {
				want = n - 1 // the canary failed before the release
			}
			if r.Counts[protocol.StateSucceeded] != want {
				t.Fatalf("after %s: %s %v", tc.release, r.Status, r.Counts)
			}
		})
	}
}
