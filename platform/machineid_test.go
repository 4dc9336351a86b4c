package platform

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseIOPlatformUUID(t *testing.T) {
	out := []byte(`+-o J314sAP  <class IOPlatformExpertDevice, id 0x100000210, registered>
    {
      "IOPlatformSerialNumber" = "C02XXXX"
      "IOPlatformUUID" = "564D1234-ABCD-EF01-2345-6789ABCDEF01"
    }
`)
	if got, want := parseIOPlatformUUID(out), "564D1234-ABCD-EF01-2345-6789ABCDEF01"; got != want {
		t.Errorf("parseIOPlatformUUID = %q, want %q", got, want)
	}
	if got := parseIOPlatformUUID([]byte("nothing here\n")); got != "" {
		t.Errorf("parseIOPlatformUUID(no uuid) = %q, want empty", got)
	}
}

func TestCleanMachineID(t *testing.T) {
	for in, want := range map[string]string{
		"abc\n":                   "abc",
		"\x00abc \x00":            "abc",
		"  \n":                    "",
		string(make([]byte, 300)): "",
	} {
		if got := cleanMachineID(in); got != want {
			t.Errorf("cleanMachineID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMachineIDStable(t *testing.T) {
	a, err := MachineID()
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("no machine id on this host: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := MachineID()
	if err != nil || a != b {
		t.Fatalf("second MachineID = %q, %v; want %q", b, err, a)
	}
}

func TestProcessAlive(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(self) = false")
	}
	if ProcessAlive(0) || ProcessAlive(-1) {
		t.Error("ProcessAlive of a non-pid = true")
	}
}

func TestProcessAliveDeadAndZombie(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Not reaped yet: on Linux a zombie, which does not count as alive.
	deadline := time.Now().Add(10 * time.Second)
	for ProcessAlive(pid) && runtime.GOOS == "linux" {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after it exited (zombie counted)", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Wait()
	if ProcessAlive(pid) {
		t.Errorf("pid %d alive after it was reaped", pid)
	}
}
