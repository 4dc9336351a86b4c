package platform

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/windows/svc"
)

// TestSCMHandler drives the SCM side of RunService with the requests the
// SCM sends. It runs on Windows, and on Linux under Wine through
// TestSCMHandlerUnderWine.
func TestSCMHandler(t *testing.T) {
	tests := []struct {
		name        string
		request     svc.Cmd // 0: none, run ends by itself
		runErr      error
		wantSpecial bool
		wantCode    uint32
	}{
		{"stop request", svc.Stop, nil, false, 0},
		{"shutdown request", svc.Shutdown, nil, false, 0},
		{"pre-shutdown request", svc.PreShutdown, nil, false, 0},
		{"error after stop request is still a clean stop", svc.Stop, errors.New("agent would not stop"), false, 0},
		{"run ends by itself cleanly", 0, nil, false, 0},
		// The supervisor's restart after a self-upgrade: a service-specific
		// exit code, which the SCM's recovery answers with a restart.
		{"run ends by itself with an error", 0, errors.New("restart me"), true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			h := &scmHandler{run: func(ctx context.Context) error {
				select {
				case <-ctx.Done():
				case <-release:
				}
				return tt.runErr
			}}
			req := make(chan svc.ChangeRequest, 2)
			status := make(chan svc.Status, 10)
			type result struct {
				special bool
				code    uint32
			}
			done := make(chan result, 1)
			go func() {
				special, code := h.Execute(nil, req, status)
				done <- result{special, code}
			}()
			for _, want := range []svc.State{svc.StartPending, svc.Running} {
				if st := <-status; st.State != want {
					t.Fatalf("status %v, want %v", st.State, want)
				}
			}
			req <- svc.ChangeRequest{Cmd: svc.Interrogate, CurrentStatus: svc.Status{State: svc.Running}}
			if st := <-status; st.State != svc.Running {
				t.Fatalf("interrogate answered %v", st.State)
			}
			if tt.request != 0 {
				req <- svc.ChangeRequest{Cmd: tt.request}
				if st := <-status; st.State != svc.StopPending {
					t.Fatalf("after %v: status %v, want StopPending", tt.request, st.State)
				}
			} else {
				close(release)
			}
			select {
			case r := <-done:
				if r.special != tt.wantSpecial || r.code != tt.wantCode {
					t.Fatalf("Execute = (%v, %d), want (%v, %d)", r.special, r.code, tt.wantSpecial, tt.wantCode)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Execute did not return")
			}
			if !errors.Is(h.err, tt.runErr) {
				t.Fatalf("recorded error %v, want %v", h.err, tt.runErr)
			}
		})
	}
}

func TestWindowsBinaryPath(t *testing.T) {
	spec := ServiceSpec{Name: "m", Home: `C:\Program Files\molt`, Exe: `C:\Program Files\molt\bin\molt-supervisor.exe`}
	want := `"C:\Program Files\molt\bin\molt-supervisor.exe" run --home "C:\Program Files\molt"`
	if got := windowsBinaryPath(spec); got != want {
		t.Fatalf("windowsBinaryPath = %s, want %s", got, want)
	}
}
