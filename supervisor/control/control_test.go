package control

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestMain lets the test binary act as an agent: with MOLT_CONTROL_TEST_CHILD
// set it speaks the agent's half of the channel.
func TestMain(m *testing.M) {
	if os.Getenv("MOLT_CONTROL_TEST_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	a, err := FromEnv()
	if err != nil || a == nil {
		fmt.Fprintln(os.Stderr, "no channel:", err)
		return 3
	}
	a.Ready()
	a.Busy()
	a.Idle()
	select {
	case <-a.Stop():
		fmt.Println("stopping")
		return 0
	case <-time.After(10 * time.Second):
		return 4
	}
}

func startChild(t *testing.T) (*exec.Cmd, *Channel, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOLT_CONTROL_TEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	att, err := Attach(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := att.Started()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); ch.Close() })
	return cmd, ch, bufio.NewScanner(out)
}

func expect(t *testing.T, ch *Channel, want string) {
	t.Helper()
	select {
	case got := <-ch.Messages:
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q from the child", want)
	}
}

func TestChannelBothWays(t *testing.T) {
	cmd, ch, out := startChild(t)
	expect(t, ch, MsgReady)
	expect(t, ch, MsgBusy)
	expect(t, ch, MsgIdle)
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	if !out.Scan() || out.Text() != "stopping" {
		t.Fatalf("child output %q, want stopping", out.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exit: %v", err)
	}
	if _, open := <-ch.Messages; open {
		t.Error("Messages not closed after the child exited")
	}
}

func TestAgentStopsWhenSupervisorGoes(t *testing.T) {
	cmd, ch, _ := startChild(t)
	expect(t, ch, MsgReady)
	// The supervisor's ends close, as when it is killed: the agent stops.
	ch.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent kept running after its supervisor's end closed")
	}
}

func TestFromEnvUnsupervised(t *testing.T) {
	t.Setenv(EnvChannel, "")
	a, err := FromEnv()
	if a != nil || err != nil {
		t.Fatalf("FromEnv without channel = %v, %v", a, err)
	}
	t.Setenv(EnvChannel, "x,3")
	if _, err := FromEnv(); err == nil {
		t.Fatal("bad channel spec accepted")
	}
}
