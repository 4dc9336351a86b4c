package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// TestReleaseImportPatches: a pack with patches (molt pack build
// --delta-from) is imported and its patches are served under
// /v1/packs/<version>/deltas/... with ranges, as the agents resume them; a
// patch whose bytes are not the signed ones is refused at import.
func TestReleaseImportPatches(t *testing.T) {
	e := newEnv(t)
	admin := e.tokens[protocol.RoleAdmin]
	patch := bytes.Repeat([]byte("a patch "), 100)
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	zipped := func(version string, served []byte) []byte {
		files := packtest.SmallFiles()
		m := packtest.Manifest(version, files)
		target := m.Artifacts["linux/amd64"][pack.RoleAgent]
		pp := pack.PatchPath(strings.Repeat("a", 64), target.SHA256)
		m.Deltas = map[string]pack.Delta{"1.0.0": {From: "1.0.0", Artifacts: map[string]pack.Artifact{
			target.Path: {Path: pp, Size: int64(len(patch)), SHA256: sum(patch)},
		}}}
		mb := packtest.Encode(t, m)
		es := append(packtest.Entries(mb, pack.Sign(e.sk, mb, m.Released), files), packtest.Entry{Name: pp, Data: served})
		return packtest.ZipBytes(t, es)
	}
	if code, pe := e.do("POST", "/v1/releases", admin, zipped("1.1.0", patch), nil); code != 201 {
		t.Fatalf("pack with a patch: %d %+v", code, pe)
	}
	var m pack.Manifest
	if code, _ := e.do("GET", "/v1/packs/1.1.0/manifest.json", e.tokens[protocol.RoleViewer], nil, &m); code != 200 {
		t.Fatalf("manifest: %d", code)
	}
	p, ok := m.PatchFor("1.0.0", packtest.ArtifactPath("linux/amd64", pack.RoleAgent))
	if !ok {
		t.Fatalf("the served manifest offers no patch: %+v", m.Deltas)
	}
	req, _ := http.NewRequest("GET", e.hs.URL+"/v1/packs/1.1.0/"+p.Path, nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	req.Header.Set("Range", "bytes=10-")
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, patch[10:]) || resp.Header.Get("ETag") == "" {
		t.Fatalf("patch with a range: %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}

	tampered := bytes.Clone(patch)
	tampered[0] ^= 1
	code, pe := e.do("POST", "/v1/releases", admin, zipped("1.2.0", tampered), nil)
	if code != 422 || !strings.Contains(pe.Error, "sha256 mismatch") {
		t.Fatalf("tampered patch: %d %+v", code, pe)
	}
}
