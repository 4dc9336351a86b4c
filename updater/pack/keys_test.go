package pack

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustKey(t testing.TB) (Key, SecretKey) {
	t.Helper()
	pub, sec, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, sec
}

func TestParsePublicKey(t *testing.T) {
	pub, _ := mustKey(t)
	file, _ := pub.MarshalText()
	for _, tc := range []struct {
		name, text, err string
	}{
		{"file", string(file), ""},
		{"bare", pub.String(), ""},
		{"bare with newline", pub.String() + "\r\n", ""},
		{"empty", "", "no key found"},
		{"two keys", pub.String() + "\n" + pub.String(), "more than one key line"},
		{"garbage", "RWnot-base64!", "invalid public key"},
		{"wrong length", "RWQ=", "invalid public key length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePublicKey(tc.text)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !k.Equal(pub) || k.ID() != pub.ID() {
					t.Fatalf("got key %s, want %s", k.ID(), pub.ID())
				}
				return
			}
			if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want ErrBadKey containing %q", err, tc.err)
			}
		})
	}
}

func TestLoadTrustedKeys(t *testing.T) {
	pub, _ := mustKey(t)
	pub2, _ := mustKey(t)
	dir := t.TempDir()
	file, _ := pub2.MarshalText()
	path := filepath.Join(dir, "release.pub")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.pub")
	if err := os.WriteFile(bad, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadTrustedKeys([]string{pub.String(), path})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Equal(pub) || !keys[1].Equal(pub2) || keys[1].Source != path {
		t.Fatalf("keys = %v", keys)
	}
	for _, tc := range []struct {
		spec, want string
	}{
		{filepath.Join(dir, "missing.pub"), "missing.pub"},
		{bad, "trusted key " + bad},
		{"", "empty trusted key"},
	} {
		_, err := LoadTrustedKeys([]string{pub.String(), tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec %q: error %v, want one naming %q", tc.spec, err, tc.want)
		}
	}
}

func TestSecretKeyRoundTrip(t *testing.T) {
	pub, sec := mustKey(t)
	for _, pass := range []string{"", "correct horse"} {
		text, err := MarshalSecretKey(sec, pass, CostInteractive)
		if err != nil {
			t.Fatal(err)
		}
		if got := SecretKeyEncrypted(text); got != (pass != "") {
			t.Fatalf("passphrase %q: encrypted = %v", pass, got)
		}
		back, err := ParseSecretKey(text, pass)
		if err != nil {
			t.Fatalf("passphrase %q: %v", pass, err)
		}
		if !back.Public().Equal(pub) {
			t.Fatalf("passphrase %q: round trip changed the key", pass)
		}
		if pass != "" {
			if _, err := ParseSecretKey(text, "wrong"); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if _, err := ParseSecretKey(text, ""); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("no passphrase: %v", err)
			}
		}
	}
	if _, err := ParseSecretKey([]byte("untrusted comment: x\nAAAA\n"), ""); !errors.Is(err, ErrBadKey) {
		t.Fatalf("garbage secret key: %v", err)
	}
}

func TestVerifyManifest(t *testing.T) {
	pub, sec := mustKey(t)
	other, otherSec := mustKey(t)
	m := testManifest(t)
	sig := Sign(sec, m, time.Unix(1700000000, 0))
	if id, err := SignatureKeyID(sig); err != nil || id != pub.ID() {
		t.Fatalf("SignatureKeyID = %q, %v; want %s", id, err, pub.ID())
	}
	got, err := VerifyManifest(m, sig, []Key{other, pub})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "1.5.0" {
		t.Fatalf("version %q", got.Version)
	}
	flipped := append([]byte{}, m...)
	flipped[len(flipped)-3] ^= 1
	resigned := Sign(sec, []byte(`{"version": "1.5.0"}`), time.Now())
	for _, tc := range []struct {
		name          string
		manifest, sig []byte
		keys          []Key
		want          error
		text          string
	}{
		{"untrusted", m, sig, []Key{other}, ErrUntrustedKey, "signed by key " + pub.ID() + ", which is not trusted (trusted: " + other.ID() + ")"},
		{"no keys", m, sig, nil, ErrUntrustedKey, "no key is trusted"},
		{"tampered manifest", flipped, sig, []Key{pub}, ErrBadSignature, "does not match"},
		{"forged key id", m, forgeKeyID(t, Sign(otherSec, m, time.Now()), sec), []Key{pub}, ErrBadSignature, "does not match"},
		{"garbage signature", m, []byte("hello"), []Key{pub}, ErrBadSignature, "malformed"},
		{"huge signature", m, make([]byte, MaxSignatureSize+1), []Key{pub}, ErrTooLarge, "signature"},
		{"huge manifest", make([]byte, MaxManifestSize+1), sig, []Key{pub}, ErrTooLarge, "manifest.json"},
		{"signed nonsense", []byte(`{"version": "1.5.0"}`), resigned, []Key{pub}, ErrBadManifest, "no artifacts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyManifest(tc.manifest, tc.sig, tc.keys)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
}

// forgeKeyID rewrites the key id of a signature made by another key, as an
// attacker would to reach a trusted key's verification.
func forgeKeyID(t *testing.T, sig []byte, as SecretKey) []byte {
	t.Helper()
	s, err := parseSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	s.KeyID = as.priv.ID()
	b, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testManifest(t testing.TB) []byte {
	t.Helper()
	return []byte(`{
  "version": "1.5.0",
  "released": "2026-01-02T03:04:05Z",
  "floor": "1.2.0",
  "artifacts": {
    "linux/amd64": {
      "agent": {"path": "linux_amd64/molt-agent", "size": 5, "sha256": "` + strings.Repeat("a", 64) + `"},
      "supervisor": {"path": "linux_amd64/molt-supervisor", "size": 7, "sha256": "` + strings.Repeat("b", 64) + `"}
    }
  }
}
`)
}

// Key ids read as the minisign tool prints them, leading zeros dropped:
// one key in sixteen has an id whose first hex digit is 0.
func TestFormatKeyID(t *testing.T) {
	for _, tc := range []struct {
		id   uint64
		want string
	}{
		{0x9A53AAAE44166BC1, "9A53AAAE44166BC1"},
		{0x09A53AAAE44166BC, "9A53AAAE44166BC"},
		{0x00000000000000AB, "AB"},
	} {
		if got := FormatKeyID(tc.id); got != tc.want {
			t.Errorf("FormatKeyID(%#016x) = %s, want %s", tc.id, got, tc.want)
		}
	}
}
