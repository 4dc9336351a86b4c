package server

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
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
	if code, pe := e.do("POST", "/v1/releases", admin, makeTarPack(t, e.sk, "1.1.0", "", "linux/amd64"), nil); code != 201 {
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
