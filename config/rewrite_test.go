package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const bakedYAML = `# agent.yaml of the web image (managed by ops)
server: https://molt.example.com:8443
ca_file: /etc/molt/ca.pem

# One-time enrollment; the agent removes it.
enrollment_token: molte_secret   # from molt enroll-token create
trusted_keys:
  - /etc/molt/release.pub   # release key
labels:
  role: web
supervisor:
  # Slow starters.
  ready_timeout: 90s
`

// TestRemoveEnrollmentToken: the token the agent enrolled with leaves
// agent.yaml; every other key, comment and the mode stay, and the file
// says where the token went. A token that is not the one used stays.
func TestRemoveEnrollmentToken(t *testing.T) {
	now := time.Date(2026, 12, 3, 4, 5, 6, 0, time.UTC)
	write := func(t *testing.T, content string, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("removed, the rest kept", func(t *testing.T) {
		p := write(t, bakedYAML, 0o640)
		before, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		changed, err := RemoveEnrollmentToken(p, "molte_secret", now)
		if err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		b, _ := os.ReadFile(p)
		got := string(b)
		for _, want := range []string{"# agent.yaml of the web image (managed by ops)", "# One-time enrollment; the agent removes it.",
			"# enrollment_token was removed by molt-agent once it enrolled (2026-12-03T04:05:06Z)", "keep_enrollment_token: true",
			"/etc/molt/release.pub # release key", "# Slow starters.", "ready_timeout: 90s", "\n  role: web"} {
			if !strings.Contains(got, want) {
				t.Errorf("rewritten file lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "molte_secret") {
			t.Fatalf("the token is still there:\n%s", got)
		}
		after, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		before.EnrollmentToken = ""
		if before.Server != after.Server || before.CAFile != after.CAFile || len(after.TrustedKeys) != 1 || after.Labels["role"] != "web" ||
			after.Supervisor.ReadyTimeout != before.Supervisor.ReadyTimeout || after.EnrollmentToken != "" {
			t.Errorf("configuration changed:\nbefore %+v\nafter  %+v", before, after)
		}
		if fi, _ := os.Stat(p); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", fi.Mode().Perm())
		}
		ents, _ := os.ReadDir(filepath.Dir(p))
		if len(ents) != 1 {
			t.Errorf("files left beside agent.yaml: %v", ents)
		}
	})
	t.Run("last key", func(t *testing.T) {
		p := write(t, "server: https://m:8443\nenrollment_token: tok\n", 0o600)
		if changed, err := RemoveEnrollmentToken(p, "tok", now); err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		c, err := Load(p)
		if err != nil || c.EnrollmentToken != "" || c.Server != "https://m:8443" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	for _, tc := range []struct{ name, content, used string }{
		{"another token (MOLT_ENROLLMENT_TOKEN)", bakedYAML, "molte_from_env"},
		{"no token in the file", "server: https://m:8443\n", "tok"},
		{"empty file", "", "tok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, tc.content, 0o600)
			if changed, err := RemoveEnrollmentToken(p, tc.used, now); err != nil || changed {
				t.Fatalf("changed %v, err %v", changed, err)
			}
			if b, _ := os.ReadFile(p); string(b) != tc.content {
				t.Errorf("file changed:\n%s", b)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if changed, err := RemoveEnrollmentToken(filepath.Join(t.TempDir(), "agent.yaml"), "tok", now); err != nil || changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
	})
	t.Run("symbolic link kept", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("symbolic links need a privilege on windows")
		}
		target := write(t, bakedYAML, 0o600)
		link := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if changed, err := RemoveEnrollmentToken(link, "molte_secret", now); err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced: %v %v", fi, err)
		}
		if b, _ := os.ReadFile(target); strings.Contains(string(b), "molte_secret") {
			t.Fatalf("the target still holds the token")
		}
	})
}
