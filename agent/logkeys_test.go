package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// upgradeDaemon is a daemon at 1.0.0 over a real updater, logging as
// molt-agent run does (the running version on every line) into an
// observer.
func upgradeDaemon(t *testing.T, keys []pack.Key) (*Daemon, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core).With(zap.String("version", "1.0.0"))
	h := home.New(t.TempDir())
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{
		Home: h, Config: &config.Config{}, Log: log, Version: "1.0.0",
		Updater: NewUpdater(updater.Options{Home: h, Keys: keys, Logger: log.Named("updater"),
			FreeSpace: func(string) (uint64, error) { return 1 << 40, nil }}),
		Fingerprint: func() (string, error) { return "fp", nil },
		Poll:        10 * time.Millisecond, SwitchGrace: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}

// upgradePacks writes a good pack of 1.5.0 for this platform and one
// whose agent binary does not match the manifest's checksum.
func upgradePacks(t *testing.T, sk pack.SecretKey) (good, corrupt string) {
	t.Helper()
	plat := buildinfo.Platform()
	files := packtest.Files{plat: {pack.RoleAgent: []byte("agent 1.5.0\n"), pack.RoleSupervisor: []byte("supervisor 1.5.0\n")}}
	dir := t.TempDir()
	good, corrupt = filepath.Join(dir, "good.pack"), filepath.Join(dir, "corrupt.pack")
	packtest.Good(t, good, "1.5.0", files, sk)
	_, entries := packtest.Signed(t, "1.5.0", files, nil, sk)
	for i, e := range entries {
		if e.Name == packtest.ArtifactPath(plat, pack.RoleAgent) {
			entries[i].Data = []byte("AGENT 1.5.0\n") // same size, other bytes
		}
	}
	packtest.WriteZip(t, corrupt, entries)
	return good, corrupt
}

// No line of an upgrade's log has a key twice: the running version is
// "version", the version being installed "target". A refused pack's error
// names its step and version once.
func TestUpgradeLogKeysUnique(t *testing.T) {
	pub, sk, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	good, corrupt := upgradePacks(t, sk)
	for _, tc := range []struct {
		name, pack string
		wantErr    string
	}{
		{"staged and switched", good, ""},
		{"refused", corrupt, "prepare 1.5.0: agent: " + packtest.ArtifactPath(buildinfo.Platform(), pack.RoleAgent) +
			": sha256 mismatch: manifest says " + sha256Hex("agent 1.5.0\n") + ", file has " + sha256Hex("AGENT 1.5.0\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := upgradeDaemon(t, []pack.Key{pub})
			err := d.RunOrder(context.Background(), Order{ID: "dep-1", Version: "1.5.0", PackFile: tc.pack})
			if got := errText(err); got != tc.wantErr {
				t.Errorf("RunOrder = %q, want %q", got, tc.wantErr)
			}
			if logs.Len() == 0 {
				t.Fatal("nothing logged")
			}
			targets := 0
			for _, e := range logs.All() {
				seen := map[string]bool{}
				for _, f := range e.Context {
					if seen[f.Key] {
						t.Errorf("%q has the key %q twice: %v", e.Message, f.Key, e.ContextMap())
					}
					seen[f.Key] = true
				}
				if m := e.ContextMap(); m["target"] == "1.5.0" {
					targets++
					if m["version"] != "1.0.0" {
						t.Errorf("%q: version %v, want the running 1.0.0", e.Message, m["version"])
					}
				}
			}
			if targets == 0 {
				t.Error("no line names the target version")
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
