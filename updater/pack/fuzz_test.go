package pack

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzParseManifest(f *testing.F) {
	sha := strings.Repeat("0", 64)
	f.Add(testManifest(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":"1.0.0","artifacts":{"linux/amd64":{"agent":{"path":"../x","size":1,"sha256":""}}}}`))
	f.Add([]byte(`{"version":"1.0.0","artifacts":{"linux/amd64":{"agent":{"path":"https://example.com/a","size":1,"sha256":"` +
		"0000000000000000000000000000000000000000000000000000000000000000" + `"}}}} trailing`))
	f.Add([]byte(`{"version":"1.0.0","unknown":true}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"version":"1.0.0","artifacts":{"linux/amd64":{"agent":{"path":"linux_amd64/molt-agent","size":1,"sha256":"` + sha + `"}}},` +
		`"workloads":{"linux/amd64":[{"spec":{"name":"w","command":"bin/w","ready":{"running":"1s"}},` +
		`"files":[{"path":"bin/w","size":0,"sha256":"` + sha + `","mode":"0755"}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		// Whatever parses is safe to use: valid version, paths inside the pack.
		if !ValidVersion(m.Version) {
			t.Fatalf("accepted version %q", m.Version)
		}
		for _, files := range m.Artifacts {
			for _, a := range files {
				if !isURL(a.Path) && !SafePath(a.Path) {
					t.Fatalf("accepted path %q", a.Path)
				}
			}
		}
		for _, a := range m.Files() {
			if !SafePath(a.Path) {
				t.Fatalf("accepted file %q", a.Path)
			}
		}
	})
}

func FuzzVerifyManifest(f *testing.F) {
	pub, sec, err := GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	m := testManifest(f)
	sig := Sign(sec, m, time.Unix(1700000000, 0))
	f.Add(m, sig)
	f.Add(m, []byte("untrusted comment: x\nRUQ=\ntrusted comment: y\nAAAA\n"))
	f.Add([]byte(`{}`), sig)
	f.Add(m, sig[:len(sig)/2])
	keys := []Key{pub}
	f.Fuzz(func(t *testing.T, manifest, sig []byte) {
		got, err := VerifyManifest(manifest, sig, keys)
		if err == nil && got == nil {
			t.Fatal("no manifest and no error")
		}
		// Only our own signature over exactly these bytes can verify.
		if err == nil && string(manifest) != string(m) {
			t.Fatalf("verified a manifest that was never signed: %q", manifest)
		}
	})
}
