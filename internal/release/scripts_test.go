package release

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
)

// pkgRoot is a package installed into a temporary root: its files
// extracted there, its maintainer scripts beside, and stand-ins for the
// programs the scripts call (systemctl, useradd, getent, chown) that
// record their calls instead of changing this machine.
type pkgRoot struct {
	t    *testing.T
	root string
	ctl  string
	log  string
	bin  string
}

// newRoot makes an empty root; systemd says whether systemd runs there
// (run/systemd/system exists).
func newRoot(t *testing.T, systemd bool) *pkgRoot {
	t.Helper()
	dir := t.TempDir()
	r := &pkgRoot{t: t, root: filepath.Join(dir, "root"), log: filepath.Join(dir, "calls"), bin: filepath.Join(dir, "stubs")}
	for _, d := range []string{r.root, r.bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if systemd {
		if err := os.MkdirAll(filepath.Join(r.root, "run/systemd/system"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.stub("systemctl", 0)
	r.stub("useradd", 0)
	r.stub("chown", 0)
	r.stub("getent", 2) // no such user
	return r
}

// stub puts a stand-in for name on the scripts' PATH that logs its
// arguments and exits with code.
func (r *pkgRoot) stub(name string, code int) {
	script := "#!/bin/sh\necho \"" + name + " $*\" >>'" + r.log + "'\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(filepath.Join(r.bin, name), []byte(script), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// install extracts the deb's files over the root, as dpkg unpacks an
// install or an upgrade, and takes its maintainer scripts.
func (r *pkgRoot) install(deb string) {
	r.t.Helper()
	tool := dpkgDeb(r.t)
	run(r.t, nil, tool, "-x", deb, r.root)
	r.ctl = r.t.TempDir()
	run(r.t, nil, tool, "-e", deb, r.ctl)
}

// script runs a maintainer script (or a path under the root) and returns
// its output and the calls it made.
func (r *pkgRoot) script(name string, args ...string) (string, []string) {
	r.t.Helper()
	os.Remove(r.log)
	path := filepath.Join(r.ctl, name)
	if strings.HasPrefix(name, "/") {
		path = filepath.Join(r.root, name)
	}
	env := []string{"MOLT_PKG_ROOT=" + r.root, "PATH=" + r.bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	out := run(r.t, env, "sh", append([]string{path}, args...)...)
	b, _ := os.ReadFile(r.log)
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(b) == 0 {
		calls = nil
	}
	return out, calls
}

func (r *pkgRoot) path(p string) string { return filepath.Join(r.root, p) }

func (r *pkgRoot) write(p, content string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.path(p), []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// agentYAML is an agent.yaml molt-agent install accepts.
func agentYAML(t *testing.T) string {
	pub, _ := e2etest.Key(t)
	return "server: https://127.0.0.1:9\ntrusted_keys: [" + pub + "]\n"
}

// snapshot is every file under dir with its SHA-256 (and mode), to show
// that a package upgrade left the home alone.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st, _ := d.Info()
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = st.Mode().String() + " " + hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The agent package through its life, with deb's and rpm's script
// arguments: installed without agent.yaml (nothing started), set up once
// one is there (home laid out from the package's binaries, service
// enabled and started), upgraded (the home, which molt owns, untouched;
// the service neither stopped nor restarted), removed (service stopped
// and disabled, home kept).
func TestAgentPackageLifecycle(t *testing.T) {
	old := linuxPackage(t, "1.0.0", AgentPackage, "deb")
	next := linuxPackage(t, "1.1.0", AgentPackage, "deb")
	for _, f := range []struct {
		name                                                string
		install, upgrade, prermUpgrade, prermRemove, postrm []string
	}{
		{"deb", []string{"configure"}, []string{"configure", "1.0.0"}, []string{"upgrade", "1.1.0"}, []string{"remove"}, []string{"remove"}},
		{"rpm", []string{"1"}, []string{"2"}, []string{"1"}, []string{"0"}, []string{"0"}},
	} {
		t.Run(f.name, func(t *testing.T) {
			r := newRoot(t, true)
			r.install(old)
			h := home.New(r.path("opt/molt"))

			out, calls := r.script("postinst", f.install...)
			if !strings.Contains(out, "no agent.yaml") || calls != nil {
				t.Fatalf("postinst without agent.yaml: calls %q, output:\n%s", calls, out)
			}
			if _, err := os.Stat(h.Dir); err == nil {
				t.Fatalf("postinst without agent.yaml made %s", h.Dir)
			}

			r.write("etc/molt/agent.yaml", agentYAML(t))
			out, calls = r.script("/usr/lib/molt/molt-agent-setup")
			want := []string{"systemctl daemon-reload", "systemctl enable molt-supervisor.service", "systemctl start molt-supervisor.service"}
			if d := cmp.Diff(want, calls); d != "" {
				t.Fatalf("setup: calls (-want +got):\n%s\n%s", d, out)
			}
			if a, err := h.ReadActive(); err != nil || a.Current != "1.0.0" {
				t.Fatalf("active.json after setup: %+v, %v\n%s", a, err, out)
			}
			for _, p := range []string{h.ConfigPath(), filepath.Join(h.VersionDir("1.0.0"), ".valid")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("after setup: %v", err)
				}
			}
			if snapshot(t, r.path("usr/lib/molt"))["molt-supervisor"] != snapshot(t, h.Dir)["bin/molt-supervisor"] {
				t.Errorf("bin/molt-supervisor is not the package's copy")
			}

			before := snapshot(t, h.Dir)
			if _, calls := r.script("prerm", f.prermUpgrade...); calls != nil {
				t.Errorf("prerm of an upgrade: calls %q, want none (the supervisor keeps running)", calls)
			}
			r.install(next)
			out, calls = r.script("postinst", f.upgrade...)
			want = []string{"systemctl daemon-reload"}
			if d := cmp.Diff(want, calls); d != "" {
				t.Errorf("postinst of an upgrade: calls (-want +got):\n%s\n%s", d, out)
			}
			if d := cmp.Diff(before, snapshot(t, h.Dir)); d != "" {
				t.Errorf("a package upgrade changed the home molt owns (-before +after):\n%s", d)
			}
			if v := run(t, nil, r.path("usr/lib/molt/molt-agent"), "version"); !strings.Contains(v, "1.1.0") {
				t.Errorf("the package's bootstrap copy was not upgraded: %s", v)
			}

			if _, calls := r.script("prerm", f.prermRemove...); !cmp.Equal(calls, []string{"systemctl disable --now molt-supervisor.service"}) {
				t.Errorf("prerm of a removal: calls %q", calls)
			}
			if out, calls := r.script("postrm", f.postrm...); !cmp.Equal(calls, []string{"systemctl daemon-reload"}) || !strings.Contains(out, "/opt/molt kept") {
				t.Errorf("postrm of a removal: calls %q\n%s", calls, out)
			}
			if _, err := os.Stat(h.IdentityPath()); err == nil {
				t.Errorf("an identity appeared: nothing ran the agent")
			}
		})
	}
}

// Installed where systemd is present but not running (an image built in a
// chroot): the unit is enabled for the image's boots, nothing is started.
func TestAgentPackageInImageBuild(t *testing.T) {
	r := newRoot(t, false)
	r.install(linuxPackage(t, "1.0.0", AgentPackage, "deb"))
	r.write("etc/molt/agent.yaml", agentYAML(t))
	out, calls := r.script("postinst", "configure")
	if d := cmp.Diff([]string{"systemctl enable molt-supervisor.service"}, calls); d != "" {
		t.Fatalf("calls (-want +got):\n%s\n%s", d, out)
	}
	if a, err := home.New(r.path("opt/molt")).ReadActive(); err != nil || a.Current != "1.0.0" {
		t.Fatalf("active.json: %+v, %v\n%s", a, err, out)
	}
}

// The server package's scripts: the user and /var/lib/molt are made; the
// server starts only once /etc/molt/server.yaml exists, and a package
// upgrade restarts it (the package owns /usr/bin/molt).
func TestServerPackageScripts(t *testing.T) {
	deb := linuxPackage(t, "1.0.0", ServerPackage, "deb")
	for _, tc := range []struct {
		name       string
		args       []string
		userExists bool
		config     bool
		want       []string
	}{
		{"first install, no config", []string{"configure"}, false, false, []string{"getent passwd molt", "useradd", "chown molt:molt", "systemctl daemon-reload", "systemctl enable molt-server.service"}},
		{"first install, config", []string{"1"}, false, true, []string{"getent passwd molt", "useradd", "chown molt:molt", "systemctl daemon-reload", "systemctl enable molt-server.service", "systemctl start molt-server.service"}},
		{"upgrade", []string{"configure", "0.9.0"}, true, true, []string{"getent passwd molt", "chown molt:molt", "systemctl daemon-reload", "systemctl enable molt-server.service", "systemctl try-restart molt-server.service"}},
		{"rpm upgrade", []string{"2"}, true, true, []string{"getent passwd molt", "chown molt:molt", "systemctl daemon-reload", "systemctl enable molt-server.service", "systemctl try-restart molt-server.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t, true)
			r.install(deb)
			if tc.userExists {
				r.stub("getent", 0)
			}
			if tc.config {
				r.write("etc/molt/server.yaml", "listen: 127.0.0.1:8443\n")
			}
			out, calls := r.script("postinst", tc.args...)
			var got []string
			for _, c := range calls {
				// Only the command and what it acts on: useradd's flags
				// are checked once below.
				if strings.HasPrefix(c, "useradd ") {
					if !strings.Contains(c, "--system") || !strings.HasSuffix(c, " molt") || !strings.Contains(c, "--home-dir /var/lib/molt") {
						t.Errorf("useradd: %q", c)
					}
					c = "useradd"
				}
				if strings.HasPrefix(c, "chown ") {
					if !strings.HasSuffix(c, r.path("var/lib/molt")) {
						t.Errorf("chown: %q", c)
					}
					c = "chown molt:molt"
				}
				got = append(got, c)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("calls (-want +got):\n%s\n%s", d, out)
			}
			if st, err := os.Stat(r.path("var/lib/molt")); err != nil || st.Mode().Perm() != 0o750 {
				t.Errorf("/var/lib/molt: %v %v", st, err)
			}
			if !tc.config && !strings.Contains(out, "write /etc/molt/server.yaml") {
				t.Errorf("no hint about server.yaml:\n%s", out)
			}
		})
	}
	r := newRoot(t, true)
	r.install(deb)
	if _, calls := r.script("prerm", "upgrade", "1.1.0"); calls != nil {
		t.Errorf("prerm of an upgrade: %q", calls)
	}
	if _, calls := r.script("prerm", "remove"); !cmp.Equal(calls, []string{"systemctl disable --now molt-server.service"}) {
		t.Errorf("prerm of a removal: %q", calls)
	}
}

// A package upgrade on a host whose home was never laid out (there was no
// agent.yaml at the first install, there is one now) sets it up and
// starts the service like a first install.
func TestAgentPackageUpgradeSetsUpNewHome(t *testing.T) {
	r := newRoot(t, true)
	r.install(linuxPackage(t, "1.0.0", AgentPackage, "deb"))
	r.write("etc/molt/agent.yaml", agentYAML(t))
	out, calls := r.script("postinst", "configure", "0.9.0")
	want := []string{"systemctl daemon-reload", "systemctl enable molt-supervisor.service", "systemctl start molt-supervisor.service"}
	if d := cmp.Diff(want, calls); d != "" {
		t.Fatalf("calls (-want +got):\n%s\n%s", d, out)
	}
}
