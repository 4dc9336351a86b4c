package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sign-file writes FILE.minisig; verify-file accepts it, and refuses a
// changed file or another key, with exit 1 and one line.
func TestPackSignFileVerifyFile(t *testing.T) {
	dir := t.TempDir()
	keys, other := filepath.Join(dir, "keys"), filepath.Join(dir, "other")
	for _, k := range []string{keys, other} {
		if _, errOut, code := runPack(t, "pack", "keygen", "--out", k, "--no-passphrase"); code != 0 {
			t.Fatalf("keygen: exit %d: %s", code, errOut)
		}
	}
	sums := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(sums, []byte("abc  molt_1.5.0_linux_amd64.tar.gz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runPack(t, "pack", "sign-file", "--key", filepath.Join(keys, "molt.key"), sums)
	if code != 0 || !strings.Contains(out, sums+".minisig") {
		t.Fatalf("sign-file: exit %d: %s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		name     string
		key      string
		change   bool
		wantCode int
		want     string
	}{
		{"good", filepath.Join(keys, "molt.pub"), false, 0, "ok: " + sums + " signed by key "},
		{"other key", filepath.Join(other, "molt.pub"), false, 1, "which is not trusted"},
		{"changed file", filepath.Join(keys, "molt.pub"), true, 1, "does not match the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change {
				if err := os.WriteFile(sums, []byte("abd  molt_1.5.0_linux_amd64.tar.gz\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, errOut, code := runPack(t, "pack", "verify-file", "--key", tc.key, sums)
			if code != tc.wantCode || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("verify-file: exit %d, want %d and %q: %s%s", code, tc.wantCode, tc.want, out, errOut)
			}
		})
	}
	if _, errOut, code := runPack(t, "pack", "verify-file", sums); code != 2 || !strings.Contains(errOut, "--key PUBLIC is required") {
		t.Errorf("verify-file without --key: exit %d: %s", code, errOut)
	}
}
