package updater

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// BenchmarkPrepare20MB downloads, verifies and stages a 20 MB pack (14 MB
// agent, 6 MB supervisor) from a loopback HTTPS server, as agents fetch
// from the control server, and in the same loop, under the same load,
// measures:
//
//   - the bound (boundFetch): the same bytes fetched from the same server
//     with the same client, written with fsync and hashed, overlapped as
//     the updater overlaps them, and nothing else;
//   - the local bound (boundWrite): the same bytes from memory, hashed in
//     one goroutine while another writes and fsyncs them: what the disk
//     and the hash alone allow, without the TLS transfer;
//   - what an operator would otherwise do: curl each artifact from the
//     same server into a file, then sha256sum it (real curl and sha256sum
//     processes; "unknown" when either is missing).
//
// ratio = bound time / prepare time (target >= 0.8), ratio-local = local
// bound time / prepare time, vs-operator = operator time / prepare time
// (above 1: molt is the faster).
func BenchmarkPrepare20MB(b *testing.B) {
	pub, sk := newKey(b)
	fs := packtest.Files{testPlatform: {
		pack.RoleAgent:      randomBytes(14<<20, 1),
		pack.RoleSupervisor: randomBytes(6<<20, 2),
	}}
	rel := newRelease(b, sk, "2.0.0", fs, nil)
	dir := b.TempDir()
	// Served from files over TLS, as the control server serves artifacts.
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(publishDir(b, filepath.Join(dir, "served"), rel))))
	defer srv.Close()
	base := srv.URL + "/2.0.0/"
	total := int64(20 << 20)
	client := srv.Client() // trusts the server's certificate; HTTP/1.1, as agents
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		b.Fatal(err)
	}
	op := newOperator(ca)
	var datas [][]byte
	var urls []string
	for role, data := range fs[testPlatform] {
		datas = append(datas, data)
		urls = append(urls, base+packtest.ArtifactPath(testPlatform, role))
	}

	var upd, raw, local, ops []time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hdir := filepath.Join(dir, "home"+strconv.Itoa(i))
		h := testHome(b, hdir)
		o := testOptions(h, pub)
		o.HTTPClient = client
		u := New(o)
		steps := []func(){
			func() {
				start := time.Now()
				if err := u.Prepare(context.Background(), Order{ID: "bench", Version: "2.0.0", Source: HTTPSource(base)}); err != nil {
					b.Fatal(err)
				}
				upd = append(upd, time.Since(start))
			},
			func() {
				start := time.Now()
				boundFetch(b, client, hdir, urls)
				raw = append(raw, time.Since(start))
			},
			func() {
				start := time.Now()
				boundWrite(b, hdir, datas)
				local = append(local, time.Since(start))
			},
		}
		if op.ok() {
			steps = append(steps, func() { ops = append(ops, op.fetch(b, hdir, urls)) })
		}
		// Rotate the order so that drift in the machine's load hits all
		// alike.
		for j := range steps {
			steps[(i+j)%len(steps)]()
		}
		b.StopTimer()
		os.RemoveAll(hdir)
		b.StartTimer()
	}
	// Medians: a shared machine's stalls hit single iterations. A ratio
	// is the median of each iteration's own ratio, whose parts ran back
	// to back under the same load.
	mb := float64(total) / 1e6
	b.ReportMetric(mb/median(upd).Seconds(), "MB/s-prepare")
	b.ReportMetric(mb/median(raw).Seconds(), "MB/s-bound")
	b.ReportMetric(medianRatio(raw, upd), "ratio")
	b.ReportMetric(mb/median(local).Seconds(), "MB/s-local-bound")
	b.ReportMetric(medianRatio(local, upd), "ratio-local")
	if op.ok() {
		b.ReportMetric(mb/median(ops).Seconds(), "MB/s-curl+sha256sum")
		b.ReportMetric(medianRatio(ops, upd), "vs-operator")
	} else {
		b.Logf("vs-operator: unknown (%s)", op.missing)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianRatio is the median over iterations of num[i]/den[i].
func medianRatio(num, den []time.Duration) float64 {
	rs := make([]float64, len(num))
	for i := range num {
		rs[i] = num[i].Seconds() / den[i].Seconds()
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

// publishDir writes a release under root/<version>/ for a file server.
func publishDir(b *testing.B, root string, r *release) string {
	put := func(rel string, data []byte) {
		p := filepath.Join(root, r.version, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	put(pack.ManifestName, r.mb)
	put(pack.SignatureName, r.sb)
	for plat, roles := range r.files {
		for role, data := range roles {
			put(packtest.ArtifactPath(plat, role), data)
		}
	}
	return root
}

// boundFetch is the bound: each artifact fetched with the same client
// from the same server, every byte written in 256 KiB chunks as it comes
// and hashed (SHA-256) in another goroutine, with write-back started every
// 4 MiB and an fsync at the end of each file: what the updater does,
// overlapped the same way, without anything else (no manifest, signature,
// upgrade.json, progress, resume, directory fsyncs or stage).
func boundFetch(b *testing.B, client *http.Client, dir string, urls []string) {
	for i, u := range urls {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "bound-"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		hs := startHasher(sha256.New(), copyBuffer)
		fl := startFlusher(f)
		var unflushed int
		for {
			buf := hs.buffer()
			n, rerr := io.ReadFull(resp.Body, buf)
			if n > 0 {
				if _, err := f.Write(buf[:n]); err != nil {
					b.Fatal(err)
				}
				hs.write(buf[:n])
				if unflushed += n; unflushed >= flushEvery {
					unflushed = 0
					fl.poke()
				}
			} else {
				hs.recycle(buf)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				b.Fatal(rerr)
			}
		}
		resp.Body.Close()
		fl.stop()
		hs.wait()
		_ = hex.EncodeToString(hs.h.Sum(nil))
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// boundWrite is the local bound: every byte hashed (SHA-256) in one goroutine
// while the files are written in copyBuffer chunks and fsynced in
// another; nothing else.
func boundWrite(b *testing.B, dir string, datas [][]byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, data := range datas {
			h := sha256.New()
			h.Write(data)
			_ = hex.EncodeToString(h.Sum(nil))
		}
	}()
	for i, data := range datas {
		f, err := os.Create(filepath.Join(dir, "raw-"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += copyBuffer {
			if _, err := f.Write(data[off:min(off+copyBuffer, len(data))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	<-done
}

// operator fetches artifacts as a person would without molt: curl into a
// file, then sha256sum of it, as real processes.
type operator struct {
	curl, sha256sum, ca string
	missing             string // why it cannot run; empty when it can
}

func newOperator(ca string) *operator {
	op := &operator{ca: ca}
	var missing []string
	for _, p := range []struct {
		name string
		path *string
	}{{"curl", &op.curl}, {"sha256sum", &op.sha256sum}} {
		if path, err := exec.LookPath(p.name); err == nil {
			*p.path = path
		} else {
			missing = append(missing, p.name+" not found")
		}
	}
	op.missing = strings.Join(missing, ", ")
	return op
}

func (op *operator) ok() bool { return op.missing == "" }

func (op *operator) fetch(b *testing.B, dir string, urls []string) time.Duration {
	start := time.Now()
	for i, u := range urls {
		out := filepath.Join(dir, "curl-"+strconv.Itoa(i))
		if o, err := exec.Command(op.curl, "-fsS", "--cacert", op.ca, "-o", out, u).CombinedOutput(); err != nil {
			b.Fatalf("curl %s: %v\n%s", u, err, o)
		}
		if o, err := exec.Command(op.sha256sum, out).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v\n%s", err, o)
		}
	}
	return time.Since(start)
}

// BenchmarkStageMemory stages a 200 MB artifact in a child process, once
// from a pack file and once over HTTPS, and reports how much its peak RSS
// (VmHWM, or getrusage where there is no /proc) grew: the artifact is
// streamed, never held in memory.
func BenchmarkStageMemory(b *testing.B) {
	const size = 200 << 20
	dir := b.TempDir()
	pub, sk := newKey(b)
	pk, served := writeBigRelease(b, dir, sk, "3.0.0", size)
	// Over TLS, as agents fetch; the child trusts the server's
	// certificate through SSL_CERT_FILE.
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(served)))
	defer srv.Close()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, src := range []struct{ name, env string }{
		{"pack", envPack + "=" + pk},
		{"https", envURL + "=" + srv.URL + "/3.0.0/"},
	} {
		b.Run(src.name, func(b *testing.B) {
			var growth float64
			for i := 0; i < b.N; i++ {
				h := testHome(b, filepath.Join(dir, fmt.Sprintf("home-%s-%d", src.name, i)))
				cmd := helperCmd(b, "memstage", envHome+"="+h.Dir, envOrder+"=mem", envVersion+"=3.0.0",
					envKey+"="+pub.String(), src.env, "SSL_CERT_FILE="+ca)
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("memstage: %v", err)
				}
				var r memReport
				if err := json.Unmarshal(out, &r); err != nil {
					b.Fatalf("memstage output %q: %v", out, err)
				}
				growth = max(growth, float64(r.AfterKB-r.BeforeKB)/1024)
				if !h.IsValid("3.0.0") {
					b.Fatal("not staged")
				}
				os.RemoveAll(h.Dir)
			}
			b.ReportMetric(growth, "MB-peak-RSS-growth")
			b.ReportMetric(float64(size)/(1<<20), "MB-artifact")
		})
	}
}

type memReport struct {
	BeforeKB int64 `json:"before_kb"`
	AfterKB  int64 `json:"after_kb"`
}

// helperMemStage runs one Prepare and prints the peak RSS before and after.
func helperMemStage() error {
	key, err := pack.ParsePublicKey(os.Getenv(envKey))
	if err != nil {
		return err
	}
	u := New(testOptions(home.Home{Dir: os.Getenv(envHome)}, key))
	src := HTTPSource(os.Getenv(envURL))
	if p := os.Getenv(envPack); p != "" {
		src = PackSource(p)
	}
	before, err := peakRSSKB()
	if err != nil {
		return err
	}
	if err := u.Prepare(context.Background(), Order{ID: os.Getenv(envOrder), Version: os.Getenv(envVersion), Source: src}); err != nil {
		return err
	}
	after, err := peakRSSKB()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(memReport{BeforeKB: before, AfterKB: after})
}

func peakRSSKB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return maxRSSKB()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return maxRSSKB()
}

// writeBigRelease writes a release with an agent of size random bytes both
// as a pack file and as a directory an HTTP file server can serve,
// without holding the artifact in memory.
func writeBigRelease(b *testing.B, dir string, sk pack.SecretKey, version string, size int64) (packPath, servedDir string) {
	servedDir = filepath.Join(dir, "served")
	rel := filepath.Join(servedDir, version)
	agentPath := packtest.ArtifactPath(testPlatform, pack.RoleAgent)
	agentFile := filepath.Join(rel, filepath.FromSlash(agentPath))
	if err := os.MkdirAll(filepath.Dir(agentFile), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(agentFile)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	r := rand.New(rand.NewPCG(5, 6))
	var word [8]byte
	for n := int64(0); n < size; n += 8 {
		v := r.Uint64()
		for j := range 8 {
			word[j] = byte(v >> (8 * j))
		}
		w.Write(word[:min(8, size-n)])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	m := &pack.Manifest{
		Version: version, Released: testNow,
		Artifacts: map[string]map[string]pack.Artifact{testPlatform: {
			pack.RoleAgent: {Path: agentPath, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))},
		}},
	}
	mb := packtest.Encode(b, m)
	sb := pack.Sign(sk, mb, testNow)
	for name, data := range map[string][]byte{pack.ManifestName: mb, pack.SignatureName: sb} {
		if err := os.WriteFile(filepath.Join(rel, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}

	packPath = filepath.Join(dir, version+".pack")
	out, err := os.Create(packPath)
	if err != nil {
		b.Fatal(err)
	}
	zw := zip.NewWriter(out)
	add := func(name string, src io.Reader) {
		e, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(e, src); err != nil {
			b.Fatal(err)
		}
	}
	add(pack.ManifestName, strings.NewReader(string(mb)))
	add(pack.SignatureName, strings.NewReader(string(sb)))
	af, err := os.Open(agentFile)
	if err != nil {
		b.Fatal(err)
	}
	add(agentPath, af)
	af.Close()
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return packPath, servedDir
}
