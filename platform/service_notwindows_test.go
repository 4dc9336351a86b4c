//go:build !windows

package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestRunServiceHelper is the process TestRunServiceStopsOnSignal signals.
func TestRunServiceHelper(t *testing.T) {
	if os.Getenv("MOLT_TEST_RUNSERVICE") != "1" {
		t.Skip("helper process of TestRunServiceStopsOnSignal")
	}
	err := RunService("molt-test", func(ctx context.Context) error {
		fmt.Println("running")
		<-ctx.Done()
		return errors.New("run ended: " + ctx.Err().Error())
	})
	fmt.Println("returned:", err)
	os.Exit(0)
}

func TestRunServiceStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunServiceHelper$")
			cmd.Env = append(os.Environ(), "MOLT_TEST_RUNSERVICE=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			lines := make(chan string, 10)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			expect := func(want string) {
				t.Helper()
				select {
				case l := <-lines:
					if l != want {
						t.Fatalf("helper said %q, want %q", l, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("helper did not say %q", want)
				}
			}
			expect("running")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expect("returned: run ended: context canceled")
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper: %v", err)
			}
		})
	}
}

func TestRunServiceReturnsRunError(t *testing.T) {
	want := errors.New("done by itself")
	err := RunService("molt-test", func(ctx context.Context) error {
		if ctx.Err() != nil {
			return fmt.Errorf("context already done: %w", ctx.Err())
		}
		return want
	})
	if !errors.Is(err, want) {
		t.Fatalf("RunService = %v, want %v", err, want)
	}
}
