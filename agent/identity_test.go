package agent

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

func TestIdentityLifecycle(t *testing.T) {
	h := home.New(t.TempDir())
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	id, change, err := EnsureIdentity(h, "fp-a", now, nil)
	if err != nil || change != IdentityCreated {
		t.Fatalf("first EnsureIdentity = %v, %v; want created", change, err)
	}
	if id.Enrolled() || len(id.ID) < 20 || id.Fingerprint != "fp-a" {
		t.Errorf("new identity = %+v", id)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(h.IdentityPath())
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("identity.json mode = %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	}

	again, change, err := EnsureIdentity(h, "fp-a", now.Add(time.Hour), nil)
	if err != nil || change != IdentityLoaded || again.ID != id.ID {
		t.Errorf("same machine: %v %v id %s, want loaded %s", change, err, again.ID, id.ID)
	}

	// Enrollment is kept across starts on the same machine.
	enrolled := again
	enrolled.ID, enrolled.Credential, enrolled.Server = "agent-7", "secret", "https://s"
	if err := WriteIdentity(h, enrolled); err != nil {
		t.Fatal(err)
	}
	got, change, _ := EnsureIdentity(h, "fp-a", now, nil)
	if change != IdentityLoaded || got.ID != "agent-7" || !got.Enrolled() {
		t.Errorf("after enrollment: %v %+v", change, got)
	}

	// No fingerprint on this OS: the identity is kept, never replaced.
	got, change, _ = EnsureIdentity(h, "", now, nil)
	if change != IdentityLoaded || got.ID != "agent-7" {
		t.Errorf("empty fingerprint: %v %+v, want the identity kept", change, got)
	}

	// A cloned image: another machine's fingerprint makes a new identity
	// without the credential.
	clone, change, err := EnsureIdentity(h, "fp-b", now, nil)
	if err != nil || change != IdentityReplaced {
		t.Fatalf("changed fingerprint: %v, %v; want replaced", change, err)
	}
	if clone.ID == "agent-7" || clone.Enrolled() || clone.Fingerprint != "fp-b" {
		t.Errorf("clone kept its template's identity: %+v", clone)
	}

	removed, ok, err := ResetIdentity(h)
	if err != nil || !ok || removed.ID != clone.ID {
		t.Errorf("ResetIdentity = %+v %v %v", removed, ok, err)
	}
	if _, err := ReadIdentity(h); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("after reset ReadIdentity err = %v, want ErrNoIdentity", err)
	}
	if _, ok, err := ResetIdentity(h); ok || err != nil {
		t.Errorf("second ResetIdentity = %v, %v; want nothing to remove", ok, err)
	}
}

func TestIdentityUnreadableIsReplaced(t *testing.T) {
	h := home.New(t.TempDir())
	os.MkdirAll(h.StateDir(), 0o755)
	for _, content := range []string{"{not json", `{"id": ""}`} {
		os.WriteFile(h.IdentityPath(), []byte(content), 0o600)
		id, change, err := EnsureIdentity(h, "fp", time.Now(), nil)
		if err != nil || change != IdentityReplaced || id.ID == "" {
			t.Errorf("%q: %v %v %+v; want a new identity", content, change, err, id)
		}
	}
}

func TestFingerprintHidesMachineID(t *testing.T) {
	a, b := FingerprintOf("3d1219c7c4c5404aaa1f6d2a48adfda4"), FingerprintOf("another")
	if a == b || len(a) != 32 || a == "3d1219c7c4c5404aaa1f6d2a48adfda4" {
		t.Errorf("fingerprints %q %q", a, b)
	}
	if FingerprintOf("x") != FingerprintOf("x") {
		t.Error("fingerprint is not stable")
	}
}
