package artifacts

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// CopyDir copies every version of a packs directory (not an import's
// leftovers), checks what it wrote, skips what the target already holds
// byte for byte, and publishes again a version of which the target holds
// a different copy.
func TestCopyDir(t *testing.T) {
	forEachStore(t, func(t *testing.T, dst Store) {
		ctx := context.Background()
		data := t.TempDir()
		src, err := NewDir(filepath.Join(data, "packs"))
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]map[string]string{
			"1.0.0": {"manifest.json": "m1", "linux-amd64/molt-agent": "agent 1"},
			"1.1.0": {"manifest.json": "m2", "linux-amd64/molt-agent": "agent 2", "linux-arm64/molt-agent": "agent 2 arm"},
		}
		for v, fs := range files {
			if err := src.Publish(ctx, v, packDir(t, src.root, fs)); err != nil {
				t.Fatal(err)
			}
		}
		packDir(t, src.root, map[string]string{"partial": "an interrupted import"})

		summary := func(cs []CopiedPack) map[string]bool {
			m := map[string]bool{}
			for _, c := range cs {
				m[c.Version] = c.Skipped
			}
			return m
		}
		var seen int
		got, err := CopyDir(ctx, src.root, dst, data, func(CopiedPack) { seen++ })
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]bool{"1.0.0": false, "1.1.0": false}, summary(got)); d != "" || seen != 2 {
			t.Errorf("first copy (-want +got, version -> skipped):\n%s", d)
		}
		if got[1].Files != 3 || got[1].Bytes != int64(len("m2agent 2agent 2 arm")) {
			t.Errorf("1.1.0: %+v", got[1])
		}
		for v, fs := range files {
			for p, want := range fs {
				if b, err := read(t, dst, v, p); err != nil || b != want {
					t.Errorf("%s/%s: %q %v, want %q", v, p, b, err, want)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(src.root, "1.0.0", "manifest.json")); err != nil {
			t.Errorf("the source lost a file: %v", err)
		}

		got, err = CopyDir(ctx, src.root, dst, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]bool{"1.0.0": true, "1.1.0": true}, summary(got)); d != "" {
			t.Errorf("second copy (-want +got):\n%s", d)
		}

		// The target's copy of 1.0.0 differs (same size): published again.
		if err := dst.Publish(ctx, "1.0.0", packDir(t, root(dst), map[string]string{"manifest.json": "mX", "linux-amd64/molt-agent": "agent 1"})); err != nil {
			t.Fatal(err)
		}
		got, err = CopyDir(ctx, src.root, dst, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]bool{"1.0.0": false, "1.1.0": true}, summary(got)); d != "" {
			t.Errorf("copy over a different 1.0.0 (-want +got):\n%s", d)
		}
		if b, err := read(t, dst, "1.0.0", "manifest.json"); err != nil || b != "m1" {
			t.Errorf("1.0.0/manifest.json: %q %v", b, err)
		}
		left, _ := filepath.Glob(filepath.Join(data, ".migrate-*"))
		if len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}
