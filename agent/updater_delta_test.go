package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/delta"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// The DEPLOY report says how each offered file was obtained: a "delta"
// step for the agent made from its patch, a "full" step with the reason
// when the installed file is not the patch's base.
func TestUpdaterDeltaSteps(t *testing.T) {
	for _, tc := range []struct {
		name, step, detail string
		corrupt            bool
	}{
		{"patch used", "delta", "agent: patch from 1.0.0, ", false},
		{"base changed", "full", "agent: installed file is not the patch's base: versions/1.0.0/molt-agent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plat := buildinfo.Platform()
			pub, sk, err := pack.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			old := bytes.Repeat([]byte("molt-agent 1.0.0 code "), 5000)
			agent := bytes.Replace(old, []byte("1.0.0"), []byte("1.1.0"), 1)
			var p bytes.Buffer
			if err := delta.Diff(old, agent, &p); err != nil {
				t.Fatal(err)
			}
			sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
			files := packtest.Files{plat: {pack.RoleAgent: agent, pack.RoleSupervisor: []byte("supervisor 1.1.0\n")}}
			m := packtest.Manifest("1.1.0", files)
			pp := pack.PatchPath(sum(old), sum(agent))
			m.Deltas = map[string]pack.Delta{"1.0.0": {From: "1.0.0", Artifacts: map[string]pack.Artifact{
				packtest.ArtifactPath(plat, pack.RoleAgent): {Path: pp, Size: int64(p.Len()), SHA256: sum(p.Bytes())},
			}}}
			mb := packtest.Encode(t, m)
			dir := t.TempDir()
			for name, b := range map[string][]byte{pack.ManifestName: mb, pack.SignatureName: pack.Sign(sk, mb, m.Released), pp: p.Bytes(),
				packtest.ArtifactPath(plat, pack.RoleAgent): agent, packtest.ArtifactPath(plat, pack.RoleSupervisor): files[plat][pack.RoleSupervisor]} {
				write(t, filepath.Join(dir, filepath.FromSlash(name)), b)
			}
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()

			h := home.New(t.TempDir())
			if tc.corrupt {
				old[0] ^= 1
			}
			write(t, h.AgentBinary("1.0.0"), old)
			write(t, h.ValidPath("1.0.0"), []byte("{}\n"))
			if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
				t.Fatal(err)
			}
			u := NewUpdater(updater.Options{Home: h, Keys: []pack.Key{pub}, FreeSpace: func(string) (uint64, error) { return 1 << 40, nil }})
			var steps []Progress
			err = u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", PackURL: srv.URL, Progress: func(pr Progress) {
				if pr.Step == "delta" || pr.Step == "full" {
					steps = append(steps, pr)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != 1 || steps[0].Step != tc.step || !strings.HasPrefix(steps[0].Detail, tc.detail) {
				t.Fatalf("steps %+v, want one %q step beginning %q", steps, tc.step, tc.detail)
			}
			if got, _ := os.ReadFile(h.AgentBinary("1.1.0")); !bytes.Equal(got, agent) {
				t.Error("1.1.0's agent is not staged")
			}
		})
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
