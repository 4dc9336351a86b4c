package pack_test

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// FuzzOpen feeds arbitrary bytes to the pack reader: it must refuse them
// with an error, never panic, and never hand out more than an artifact's
// manifest size.
func FuzzOpen(f *testing.F) {
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	good := dir + "/good.zip"
	packtest.Good(f, good, "1.5.0", packtest.SmallFiles(), sec)
	b, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	withWorkloads := dir + "/workloads.zip"
	packtest.GoodWithWorkloads(f, withWorkloads, "1.5.0", packtest.SmallFiles(), packtest.SampleWorkloads(), sec)
	if b, err = os.ReadFile(withWorkloads); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, c := range append(packtest.BadPacks(f, dir, sec), packtest.BadWorkloadPacks(f, dir, sec)...) {
		b, err := os.ReadFile(c.Path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	keys := []pack.Key{pub}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := pack.NewReader(bytes.NewReader(b), int64(len(b)), 1<<20)
		if err != nil {
			return
		}
		defer r.Close()
		m, err := r.Verify(keys)
		if err != nil {
			return
		}
		for _, a := range m.Files() {
			rc, err := r.OpenArtifact(a)
			if err != nil {
				continue
			}
			n, _ := io.Copy(io.Discard, rc)
			rc.Close()
			if n > a.Size {
				t.Fatalf("%s: read %d bytes, manifest says %d", a.Path, n, a.Size)
			}
		}
	})
}
