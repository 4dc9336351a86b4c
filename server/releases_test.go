package server

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// rezip copies a zip pack, changing entries with edit (nil: drop it) and
// adding extra ones.
func rezip(t *testing.T, pk []byte, edit func(name string, b []byte) []byte, extra map[string][]byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pk), int64(len(pk)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if edit != nil {
			if b = edit(f.Name, b); b == nil {
				continue
			}
		}
		w, _ := zw.Create(f.Name)
		w.Write(b)
	}
	for n, b := range extra {
		w, _ := zw.Create(n)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

// TestReleaseImportFormats: the zip molt pack build writes is imported as
// is, a tar.gz of a pack directory too; a zip that fails any check is
// refused with the reason and leaves nothing behind.
func TestReleaseImportFormats(t *testing.T) {
	e := newEnv(t)
	admin := e.tokens[protocol.RoleAdmin]
	zipPack := makePack(t, e.sk, "1.0.0", "", "linux/amd64", "windows/amd64")
	var rel protocol.Release
	if code, pe := e.do("POST", "/v1/releases", admin, zipPack, &rel); code != 201 {
		t.Fatalf("zip pack: %d %+v", code, pe)
	}
	if rel.Version != "1.0.0" || strings.Join(rel.Platforms, ",") != "linux/amd64,windows/amd64" {
		t.Fatalf("release %+v", rel)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "packs", "1.0.0", "windows_amd64", "molt-agent"))
	if err != nil || string(b) != "1.0.0 windows/amd64 agent binary" {
		t.Fatalf("artifact on disk: %q %v", b, err)
	}
	if code, pe := e.do("POST", "/v1/releases", admin, tarPack(t, dirEntries(packFiles(e.sk, "1.1.0", "", "linux/amd64")), true), nil); code != 201 {
		t.Fatalf("tar.gz pack: %d %+v", code, pe)
	}

	for _, tc := range []struct {
		name, reason string
		body         []byte
	}{
		{"artifact changed", "sha256 mismatch", rezip(t, makePack(t, e.sk, "2.0.0", "", "linux/amd64"), func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "molt-agent") {
				b = bytes.ToUpper(b)
			}
			return b
		}, nil)},
		{"artifact missing", "not in the pack", rezip(t, makePack(t, e.sk, "2.0.1", "", "linux/amd64"), func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "molt-supervisor") {
				return nil
			}
			return b
		}, nil)},
		{"extra entry", "not named by the manifest", rezip(t, makePack(t, e.sk, "2.0.2", "", "linux/amd64"), nil, map[string][]byte{"extra/run.sh": []byte("#!/bin/sh")})},
		{"unsigned", "manifest.json.sig", rezip(t, makePack(t, e.sk, "2.0.3", "", "linux/amd64"), func(n string, b []byte) []byte {
			if n == "manifest.json.sig" {
				return nil
			}
			return b
		}, nil)},
		{"truncated", "not a zip", makePack(t, e.sk, "2.0.4", "", "linux/amd64")[:200]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, pe := e.do("POST", "/v1/releases", admin, tc.body, nil)
			if code != 422 || pe.Code != protocol.CodePackRejected || !strings.Contains(pe.Error, tc.reason) {
				t.Fatalf("%d %+v, want 422 pack_rejected with %q", code, pe, tc.reason)
			}
		})
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "packs", ".*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	var rels protocol.Releases
	e.must("GET", "/v1/releases", protocol.RoleViewer, nil, &rels)
	if len(rels.Releases) != 2 {
		t.Errorf("%d releases, want the two good ones", len(rels.Releases))
	}
}

// dirEntries lists a pack directory's files as tar entries, the manifest
// and its signature first (as a tar upload must have them).
func dirEntries(files map[string][]byte) []packtest.Entry {
	es := []packtest.Entry{{Name: pack.ManifestName, Data: files[pack.ManifestName]}, {Name: pack.SignatureName, Data: files[pack.SignatureName]}}
	for name, b := range files {
		if name != pack.ManifestName && name != pack.SignatureName {
			es = append(es, packtest.Entry{Name: name, Data: b})
		}
	}
	return es
}

// tarPack writes entries, in order, as a tar (gzip when gz), with a
// directory entry before the files as tar -c writes them.
func tarPack(t *testing.T, entries []packtest.Entry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "./", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + e.Name, Mode: 0o644, Size: int64(len(e.Data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestReleaseImportWorkloads: a pack with workloads is imported from a
// zip or a tar, its workload files served with ranges like the binaries;
// a bad spec, a changed or missing workload file and one the manifest
// does not name are refused with the reason, in either format, and leave
// nothing behind.
func TestReleaseImportWorkloads(t *testing.T) {
	e := newEnv(t)
	admin := e.tokens[protocol.RoleAdmin]
	ws := packtest.SampleWorkloads()
	m, entries := packtest.Signed(t, "1.5.0", packtest.SmallFiles(), ws, e.sk)
	var rel protocol.Release
	if code, pe := e.do("POST", "/v1/releases", admin, packtest.ZipBytes(t, entries), &rel); code != 201 {
		t.Fatalf("zip pack with workloads: %d %+v", code, pe)
	}
	var want int64
	for _, a := range m.Files() {
		want += a.Size
	}
	if rel.Size < want {
		t.Fatalf("release size %d does not count the workload files (%d)", rel.Size, want)
	}
	get := func(path, rng string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.hs.URL+"/v1/packs/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := e.hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	script := string(ws["linux/amd64"][0].Files["bin/run.sh"])
	if code, body := get("1.5.0/linux_amd64/workloads/exporter/bin/run.sh", "bytes=2-"); code != 206 || body != script[2:] {
		t.Fatalf("range of a workload file: %d %q", code, body)
	}
	if code, body := get("1.5.0/linux_amd64/workloads/exporter/conf/empty", ""); code != 200 || body != "" {
		t.Fatalf("empty workload file: %d %q", code, body)
	}

	// The same pack as a tar.gz, manifest first.
	_, tarEntries := packtest.Signed(t, "1.6.0", packtest.SmallFiles(), ws, e.sk)
	if code, pe := e.do("POST", "/v1/releases", admin, tarPack(t, tarEntries, true), nil); code != 201 {
		t.Fatalf("tar pack with workloads: %d %+v", code, pe)
	}
	if code, body := get("1.6.0/linux_amd64/workloads/exporter/conf/default.yaml", ""); code != 200 || body != string(ws["linux/amd64"][0].Files["conf/default.yaml"]) {
		t.Fatalf("workload file of the tar pack: %d %q", code, body)
	}

	refuse := func(t *testing.T, body []byte, reason string) {
		t.Helper()
		code, pe := e.do("POST", "/v1/releases", admin, body, nil)
		if code != 422 || pe.Code != protocol.CodePackRejected || !strings.Contains(pe.Error, reason) || strings.Contains(pe.Error, "\n") {
			t.Fatalf("%d %+v, want 422 pack_rejected, one line with %q", code, pe, reason)
		}
	}
	for _, c := range packtest.BadWorkloadPacks(t, t.TempDir(), e.sk) {
		zipBody, err := os.ReadFile(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("zip "+c.Name, func(t *testing.T) { refuse(t, zipBody, c.Text) })
		// The tar of the same entries, manifest first.
		zr, err := zip.NewReader(bytes.NewReader(zipBody), int64(len(zipBody)))
		if err != nil {
			t.Fatal(err)
		}
		var es []packtest.Entry
		for _, f := range zr.File {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			es = append(es, packtest.Entry{Name: f.Name, Data: b})
		}
		slices.SortStableFunc(es, func(a, b packtest.Entry) int {
			first := func(n string) bool { return n == pack.ManifestName || n == pack.SignatureName }
			switch {
			case first(a.Name) && !first(b.Name):
				return -1
			case first(b.Name) && !first(a.Name):
				return 1
			}
			return 0
		})
		reason := c.Text
		if c.Name == "workload file changed" {
			reason = "manifest says 26 bytes, the tar holds 19"
		}
		t.Run("tar "+c.Name, func(t *testing.T) { refuse(t, tarPack(t, es, false), reason) })
	}
	_, good := packtest.Signed(t, "2.0.0", packtest.SmallFiles(), ws, e.sk)
	t.Run("tar without the manifest first", func(t *testing.T) {
		es := slices.Clone(good)
		es[0], es[len(es)-1] = es[len(es)-1], es[0]
		refuse(t, tarPack(t, es, true), "a tar must start with them")
	})
	t.Run("tar with a workload file twice", func(t *testing.T) {
		refuse(t, tarPack(t, append(slices.Clone(good), good[len(good)-1]), true), "appears twice")
	})
	t.Run("tar with a link", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, en := range good[:2] {
			tw.WriteHeader(&tar.Header{Name: en.Name, Mode: 0o644, Size: int64(len(en.Data)), Typeflag: tar.TypeReg})
			tw.Write(en.Data)
		}
		tw.WriteHeader(&tar.Header{Name: "linux_amd64/workloads/exporter/bin/run.sh", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink})
		tw.Close()
		refuse(t, buf.Bytes(), "is not a regular file")
	})
	left, _ := filepath.Glob(filepath.Join(e.dir, "packs", ".*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	var rels protocol.Releases
	e.must("GET", "/v1/releases", protocol.RoleViewer, nil, &rels)
	if len(rels.Releases) != 2 {
		t.Errorf("%d releases, want the two good ones", len(rels.Releases))
	}
}

// TestReleaseImportNotAPack: a file that is no pack (a binary, a text, a
// gzip of something else, nothing) is refused as such, not with the tar
// reader's "invalid tar header".
func TestReleaseImportNotAPack(t *testing.T) {
	e := newEnv(t)
	admin := e.tokens[protocol.RoleAdmin]
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("release notes\n", 100)))
	zw.Close()
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"elf binary", append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0}, 2000)...)},
		{"text", []byte(strings.Repeat("molt 1.5.0 release notes\n", 50))},
		{"gzip of a text", gz.Bytes()},
		{"short", []byte("PK")},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, pe := e.do("POST", "/v1/releases", admin, tc.body, nil)
			if code != http.StatusUnprocessableEntity || pe.Code != protocol.CodePackRejected || !strings.Contains(pe.Error, "not a molt pack (expected a zip made by molt pack build)") {
				t.Fatalf("%d %+v", code, pe)
			}
		})
	}
	// A real tar of a pack directory still goes in.
	if code, pe := e.do("POST", "/v1/releases", admin, tarPack(t, dirEntries(packFiles(e.sk, "1.1.0", "", "linux/amd64")), false), nil); code != 201 {
		t.Fatalf("tar pack: %d %+v", code, pe)
	}
}
