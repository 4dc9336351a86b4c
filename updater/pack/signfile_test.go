package pack

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignFileVerifyFile(t *testing.T) {
	pub, sec := mustKey(t)
	other, _ := mustKey(t)
	data := []byte("0123  molt_1.5.0_linux_amd64.tar.gz\n")
	sig := SignFile(sec, data, "SHA256SUMS", time.Unix(1700000000, 0))
	if c, err := SignatureComment(sig); err != nil || c != "timestamp:1700000000\tfile:SHA256SUMS\thashed" {
		t.Errorf("trusted comment = %q, %v", c, err)
	}
	tampered := append([]byte(nil), data...)
	tampered[0] = '9'
	for _, tc := range []struct {
		name string
		data []byte
		sig  []byte
		keys []Key
		want error
	}{
		{"good", data, sig, []Key{other, pub}, nil},
		{"tampered file", tampered, sig, []Key{pub}, ErrBadSignature},
		{"untrusted key", data, sig, []Key{other}, ErrUntrustedKey},
		{"no key", data, sig, nil, ErrUntrustedKey},
		{"garbage", data, []byte("nope"), []Key{pub}, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := VerifyFile(tc.data, tc.sig, tc.keys)
			if !errors.Is(err, tc.want) || (tc.want == nil && id != pub.ID()) {
				t.Fatalf("VerifyFile = %q, %v; want %v", id, err, tc.want)
			}
		})
	}
}

// The minisign tool verifies what SignFile signs, as a release's users do
// with SHA256SUMS.minisig.
func TestMinisignVerifiesSignFile(t *testing.T) {
	tool := minisignTool(t)
	dir := t.TempDir()
	pub, sec := mustKey(t)
	pubText, _ := pub.MarshalText()
	data := []byte("abc  molt.deb\n")
	write(t, filepath.Join(dir, "molt.pub"), pubText)
	write(t, filepath.Join(dir, "SHA256SUMS"), data)
	write(t, filepath.Join(dir, "SHA256SUMS.minisig"), SignFile(sec, data, "SHA256SUMS", time.Now()))
	out := runTool(t, "", tool, "-V", "-p", filepath.Join(dir, "molt.pub"), "-m", filepath.Join(dir, "SHA256SUMS"))
	if !strings.Contains(out, "Signature and comment signature verified") {
		t.Fatalf("minisign -V: %s", out)
	}
}
