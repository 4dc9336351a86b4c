package pack_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
)

// Run with: go test -run XXX -bench . -benchtime 5x ./updater/pack/
// The throughput is of the binaries' bytes (before compression).

func hostBinBytes(b *testing.B) int64 {
	var n int64
	for _, name := range []string{"molt-agent", "molt-supervisor"} {
		st, err := os.Stat(filepath.Join(realBins(b), runtime.GOOS+"_"+runtime.GOARCH, name+exeSuffix()))
		if err != nil {
			b.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

func BenchmarkBuild(b *testing.B) {
	_, sec, err := pack.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "p.zip")
	b.SetBytes(hostBinBytes(b))
	for b.Loop() {
		if err := pack.Build(pack.BuildOptions{Version: testVersion, BinDir: realBins(b), Key: sec, Out: out, SkipVersionCheck: true}); err != nil {
			b.Fatal(err)
		}
	}
	if st, err := os.Stat(out); err == nil {
		b.ReportMetric(float64(st.Size())/float64(hostBinBytes(b)), "pack/raw")
	}
}

func BenchmarkVerifyAll(b *testing.B) {
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "p.zip")
	if err := pack.Build(pack.BuildOptions{Version: testVersion, BinDir: realBins(b), Key: sec, Out: out, SkipVersionCheck: true}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(hostBinBytes(b))
	for b.Loop() {
		r, err := pack.Open(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.VerifyAll([]pack.Key{pub}); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkUnlockKey is the cost of opening a passphrase-protected key at
// each --kdf setting (sensitive needs 1 GiB of memory).
func BenchmarkUnlockKey(b *testing.B) {
	_, sec, err := pack.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cost pack.KDFCost
	}{{"interactive", pack.CostInteractive}, {"sensitive", pack.CostSensitive}} {
		text, err := pack.MarshalSecretKey(sec, "passphrase", c.cost)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := pack.ParseSecretKey(text, "passphrase"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
