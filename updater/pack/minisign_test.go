package pack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/testtool"
)

// The standard minisign tool must accept our keys and signatures and we
// must accept its own: release engineers may sign with either.
func minisignTool(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "minisign", "apt-get install minisign to check that the standard tool and molt accept each other's keys and signatures")
}

func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestMinisignVerifiesOurSignature(t *testing.T) {
	tool := minisignTool(t)
	for _, pass := range []string{"", "s3cret pass"} {
		dir := t.TempDir()
		pub, sec := mustKey(t)
		pubText, _ := pub.MarshalText()
		secText, err := MarshalSecretKey(sec, pass, CostInteractive)
		if err != nil {
			t.Fatal(err)
		}
		m := testManifest(t)
		write(t, filepath.Join(dir, "molt.pub"), pubText)
		write(t, filepath.Join(dir, "molt.key"), secText)
		write(t, filepath.Join(dir, ManifestName), m)
		write(t, filepath.Join(dir, SignatureName), Sign(sec, m, time.Now()))
		out := runTool(t, "", tool, "-V", "-p", filepath.Join(dir, "molt.pub"),
			"-m", filepath.Join(dir, ManifestName), "-x", filepath.Join(dir, SignatureName))
		if !strings.Contains(out, "Signature and comment signature verified") {
			t.Fatalf("minisign -V: %s", out)
		}
		// Our secret key, encrypted or not, signs in the minisign tool too.
		other := filepath.Join(dir, "other.txt")
		write(t, other, []byte("hello\n"))
		stdin := ""
		if pass != "" {
			stdin = pass + "\n"
		}
		runTool(t, stdin, tool, "-S", "-s", filepath.Join(dir, "molt.key"), "-m", other)
		sig, err := os.ReadFile(other + ".minisig")
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := SignatureKeyID(sig); id != pub.ID() {
			t.Fatalf("minisign signed with key id %s, want %s", id, pub.ID())
		}
		if !strings.Contains(runTool(t, "", tool, "-V", "-p", filepath.Join(dir, "molt.pub"), "-m", other), "verified") {
			t.Fatal("minisign does not verify its own signature with our key")
		}
	}
}

func TestWeVerifyMinisignSignature(t *testing.T) {
	tool := minisignTool(t)
	dir := t.TempDir()
	pubPath, secPath := filepath.Join(dir, "mk.pub"), filepath.Join(dir, "mk.key")
	runTool(t, "", tool, "-G", "-W", "-p", pubPath, "-s", secPath)
	m := testManifest(t)
	mPath := filepath.Join(dir, ManifestName)
	write(t, mPath, m)
	runTool(t, "", tool, "-S", "-s", secPath, "-m", mPath, "-t", "molt 1.5.0")
	sig, err := os.ReadFile(mPath + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadTrustedKeys([]string{pubPath})
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyManifest(m, sig, keys)
	if err != nil {
		t.Fatalf("verify a minisign signature: %v", err)
	}
	if got.Version != "1.5.0" {
		t.Fatalf("version %q", got.Version)
	}
	if c, _ := SignatureComment(sig); c != "molt 1.5.0" {
		t.Fatalf("trusted comment %q", c)
	}
	// The key id we print is the one minisign prints.
	pubText, _ := os.ReadFile(pubPath)
	if !strings.Contains(string(pubText), keys[0].ID()) {
		t.Fatalf("minisign's public key file %q does not mention key id %s", pubText, keys[0].ID())
	}
	// A secret key made by minisign signs packs here.
	secText, _ := os.ReadFile(secPath)
	sec, err := ParseSecretKey(secText, "")
	if err != nil {
		t.Fatalf("parse minisign secret key: %v", err)
	}
	if !sec.Public().Equal(keys[0]) {
		t.Fatal("minisign secret key does not match its public key")
	}
	if _, err := VerifyManifest(m, Sign(sec, m, time.Now()), keys); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
