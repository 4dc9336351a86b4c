package pack_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/updater/delta"
	"github.com/moltfleet/molt/updater/pack"
)

// BenchmarkDeltaRelease measures patch releases that scripts/bench-delta.sh
// built: MOLT_BENCH_DELTA is "NAME=OLD.zip:NEW.zip,..." (NEW built with
// --delta-from OLD). For each, per platform, it prints the bytes on the
// wire per host (the manifest, its signature and the files, or the
// patches; a file without a patch counts in full), then applies every
// patch as an agent does (the base and the result on disk, the result
// hashed) and reports the time and the heap allocated per apply, the
// bound on the memory applying needs.
func BenchmarkDeltaRelease(b *testing.B) {
	spec := os.Getenv("MOLT_BENCH_DELTA")
	if spec == "" {
		b.Skip("MOLT_BENCH_DELTA is not set (scripts/bench-delta.sh sets it)")
	}
	for _, item := range strings.Split(spec, ",") {
		name, pair, _ := strings.Cut(item, "=")
		oldPath, newPath, _ := strings.Cut(pair, ":")
		b.Run(name, func(b *testing.B) { benchRelease(b, oldPath, newPath) })
	}
}

func benchRelease(b *testing.B, oldPath, newPath string) {
	ro, err := pack.Open(oldPath)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	mo, err := ro.UnverifiedManifest()
	if err != nil {
		b.Fatal(err)
	}
	rn, err := pack.Open(newPath)
	if err != nil {
		b.Fatal(err)
	}
	defer rn.Close()
	mn, err := rn.UnverifiedManifest()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	extract := func(r *pack.Reader, a pack.Artifact) string {
		p := filepath.Join(dir, strings.ReplaceAll(a.Path, "/", "_"))
		if _, err := os.Stat(p); err == nil {
			return p
		}
		rc, err := r.OpenArtifact(a)
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, rc); err != nil {
			b.Fatal(err)
		}
		f.Close()
		return p
	}
	small := int64(len(rn.ManifestBytes()) + len(rn.SignatureBytes()))
	var apply time.Duration
	var applied, allocs uint64
	var fullAll, deltaAll int64
	for _, plat := range mn.Platforms() {
		files, _ := mn.PlatformArtifacts(plat)
		oldFiles, _ := mo.PlatformArtifacts(plat)
		full, wire := small, small
		for role, a := range files {
			full += a.Size
			p, ok := mn.PatchFor(mo.Version, a.Path)
			if !ok {
				wire += a.Size
				fmt.Fprintf(os.Stderr, "  %s %s %s: %d bytes, no patch\n", mo.Version+"->"+mn.Version, plat, role, a.Size)
				continue
			}
			wire += p.Size
			base := extract(ro, oldFiles[role])
			patch := extract(rn, p.Artifact)
			var d time.Duration
			var al uint64
			for range b.N {
				t0 := time.Now()
				al += applyFile(b, base, patch, p, a)
				d += time.Since(t0)
			}
			apply += d
			applied += uint64(b.N)
			allocs += al
			fmt.Fprintf(os.Stderr, "  %s %s %s: patch %d of %d bytes (%.2f %%), applied in %s, %d KiB allocated\n",
				mo.Version+"->"+mn.Version, plat, role, p.Size, a.Size, 100*float64(p.Size)/float64(a.Size),
				(d / time.Duration(b.N)).Round(time.Millisecond), al/uint64(b.N)>>10)
		}
		fmt.Fprintf(os.Stderr, "%s -> %s %s: per host %d bytes with patches, %d in full: %.2f %%\n",
			mo.Version, mn.Version, plat, wire, full, 100*float64(wire)/float64(full))
		fullAll += full
		deltaAll += wire
	}
	// A host is of one platform: the mean over the platforms.
	plats := float64(len(mn.Platforms()))
	b.ReportMetric(float64(deltaAll)/plats, "wire-bytes/host")
	b.ReportMetric(float64(fullAll)/plats, "full-bytes/host")
	b.ReportMetric(100*float64(deltaAll)/float64(fullAll), "%-of-full")
	if applied > 0 {
		b.ReportMetric(float64(apply.Milliseconds())/float64(applied), "ms/apply")
		b.ReportMetric(float64(allocs/applied)/1024, "KiB-alloc/apply")
	}
}

// applyFile applies a patch as the agent does (updater/patch.go): files
// on disk, the result through a buffer and SHA-256. It returns the bytes
// allocated.
func applyFile(b *testing.B, basePath, patchPath string, p pack.Patch, want pack.Artifact) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	base, err := os.Open(basePath)
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	st, _ := base.Stat()
	patch, err := os.Open(patchPath)
	if err != nil {
		b.Fatal(err)
	}
	defer patch.Close()
	out, err := os.Create(filepath.Join(filepath.Dir(basePath), "result"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(out, h), 256<<10)
	if _, err := delta.Apply(base, st.Size(), patch, p.Size, bw, want.Size); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		b.Fatal("the result is not the file")
	}
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}
