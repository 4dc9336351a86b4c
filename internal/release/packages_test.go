package release

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/packaging"
	"github.com/moltfleet/molt/platform"
)

// wantFiles is what each package must hold: path -> mode as ls shows it
// (a symlink: "-> target").
var wantFiles = map[string]map[string]string{
	"molt-agent": {
		"/usr/bin/molt-agent":                             "-> /usr/lib/molt/molt-agent",
		"/usr/bin/molt-supervisor":                        "-> /usr/lib/molt/molt-supervisor",
		"/usr/lib/molt/molt-agent":                        "-rwxr-xr-x",
		"/usr/lib/molt/molt-supervisor":                   "-rwxr-xr-x",
		"/usr/lib/molt/molt-agent-setup":                  "-rwxr-xr-x",
		"/usr/lib/systemd/system/molt-supervisor.service": "-rw-r--r--",
		"/usr/share/doc/molt-agent/README.md":             "-rw-r--r--",
		"/usr/share/doc/molt-agent/copyright":             "-rw-r--r--",
	},
	"molt-server": {
		"/usr/bin/molt": "-rwxr-xr-x",
		"/usr/lib/systemd/system/molt-server.service":    "-rw-r--r--",
		"/usr/share/doc/molt-server/README.md":           "-rw-r--r--",
		"/usr/share/doc/molt-server/copyright":           "-rw-r--r--",
		"/usr/share/doc/molt-server/server.yaml.example": "-rw-r--r--",
	},
}

// Nothing in a package may be under the agent home: that is molt's.
func checkNotInHome(t *testing.T, files map[string]string) {
	t.Helper()
	for p := range files {
		if strings.HasPrefix(p, "/opt/molt") || strings.HasPrefix(p, "/etc/") {
			t.Errorf("the package ships %s: the home and /etc belong to molt and the operator", p)
		}
	}
}

// dpkg-deb -c of each package: files, modes, owners; -f: the fields;
// -e: the maintainer scripts are ours and executable.
func TestDebContents(t *testing.T) {
	tool := dpkgDeb(t)
	for _, spec := range []PackageSpec{AgentPackage, ServerPackage} {
		t.Run(spec.Name, func(t *testing.T) {
			deb := linuxPackage(t, "1.0.0", spec, "deb")
			if got := filepath.Base(deb); got != spec.Name+"_1.0.0_"+hostPlatform().Arch+".deb" {
				t.Errorf("file name %s", got)
			}
			files := map[string]string{}
			line := regexp.MustCompile(`^([dl-][rwx-]{9}) root/root +\d+ \S+ \S+ \.(/\S*?)/?(?: -> (\S+))?$`)
			for _, l := range strings.Split(strings.TrimSpace(run(t, nil, tool, "-c", deb)), "\n") {
				m := line.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("dpkg-deb -c: unexpected line (owner not root?): %q", l)
				}
				switch {
				case m[1][0] == 'd':
				case m[3] != "":
					files[m[2]] = "-> " + m[3]
				default:
					files[m[2]] = m[1]
				}
			}
			if d := cmp.Diff(wantFiles[spec.Name], files); d != "" {
				t.Errorf("files (-want +got):\n%s", d)
			}
			checkNotInHome(t, files)
			fields := run(t, nil, tool, "-f", deb, "Package", "Version", "Architecture")
			if want := fmt.Sprintf("Package: %s\nVersion: 1.0.0\nArchitecture: %s\n", spec.Name, hostPlatform().Arch); fields != want {
				t.Errorf("fields:\n%s\nwant\n%s", fields, want)
			}
			ctl := t.TempDir()
			run(t, nil, tool, "-e", deb, ctl)
			for script, src := range map[string]string{"postinst": spec.PostInstall, "prerm": spec.PreRemove, "postrm": spec.PostRemove} {
				checkScript(t, filepath.Join(ctl, script), src)
			}
		})
	}
}

// checkScript checks that the package's script at path is packaging's
// src, executable.
func checkScript(t *testing.T, path, src string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fs.ReadFile(packaging.FS, src)
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not packaging/%s", filepath.Base(path), src)
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("%s: not executable (%v)", path, err)
	}
}

// rpm -qp of each package: the same files and modes, and the scripts.
func TestRPMContents(t *testing.T) {
	tool := testtool.Need(t, "rpm", "apt-get install rpm")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[hostPlatform().Arch]
	for _, spec := range []PackageSpec{AgentPackage, ServerPackage} {
		t.Run(spec.Name, func(t *testing.T) {
			p := linuxPackage(t, "1.0.0", spec, "rpm")
			if got := filepath.Base(p); got != spec.Name+"-1.0.0-1."+arch+".rpm" {
				t.Errorf("file name %s", got)
			}
			files := map[string]string{}
			out := run(t, nil, tool, "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES} %{FILELINKTOS}\n]", p)
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) < 3 || f[1] != "root:root" {
					t.Fatalf("rpm: unexpected line (owner not root?): %q", l)
				}
				switch {
				case f[0][0] == 'd':
				case f[0][0] == 'l' && len(f) == 4:
					files[f[2]] = "-> " + f[3]
				default:
					files[f[2]] = f[0]
				}
			}
			if d := cmp.Diff(wantFiles[spec.Name], files); d != "" {
				t.Errorf("files (-want +got):\n%s", d)
			}
			checkNotInHome(t, files)
			if lic := run(t, nil, tool, "-qp", "--qf", "%{LICENSE}", p); lic != "Apache-2.0" {
				t.Errorf("rpm License %q, want Apache-2.0", lic)
			}
			scripts := run(t, nil, tool, "-qp", "--scripts", p)
			for _, src := range []string{spec.PostInstall, spec.PreRemove, spec.PostRemove} {
				b, _ := fs.ReadFile(packaging.FS, src)
				if !strings.Contains(scripts, strings.TrimSpace(string(b))) {
					t.Errorf("rpm --scripts lacks packaging/%s:\n%s", src, scripts)
				}
			}
		})
	}
}

// The package's unit and the one "molt-supervisor install" writes for the
// default home must say the same thing; only the comments differ.
func TestPackagedUnitMatchesRendered(t *testing.T) {
	b, err := fs.ReadFile(packaging.FS, "systemd/molt-supervisor.service")
	if err != nil {
		t.Fatal(err)
	}
	def, err := platform.RenderService(platform.SystemSystemd, platform.ServiceSpec{
		Name: "molt-supervisor", Home: "/opt/molt", Exe: "/opt/molt/bin/molt-supervisor",
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(directives(def.Text), directives(string(b))); d != "" {
		t.Errorf("packaging/systemd/molt-supervisor.service differs from the rendered unit (-rendered +packaged):\n%s", d)
	}
}

// directives are a unit's lines without comments and blank lines, sorted
// within their sections.
func directives(unit string) []string {
	var out, sec []string
	flush := func() { sort.Strings(sec); out = append(out, sec...); sec = nil }
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			flush()
			out = append(out, l)
		default:
			sec = append(sec, l)
		}
	}
	flush()
	return out
}

// Every file a package installs is the one it was made from: the bin
// dir's binaries, packaging's files, the README.
func TestDebFilesAreTheirSources(t *testing.T) {
	tool := dpkgDeb(t)
	o := realOptions(t, "1.0.0")
	for _, spec := range []PackageSpec{AgentPackage, ServerPackage} {
		t.Run(spec.Name, func(t *testing.T) {
			root := t.TempDir()
			run(t, nil, tool, "-x", linuxPackage(t, "1.0.0", spec, "deb"), root)
			for _, f := range spec.Files {
				got := filepath.Join(root, f.Dst)
				if f.Link != "" {
					if target, err := os.Readlink(got); err != nil || target != f.Link {
						t.Errorf("%s: link to %q, %v; want %s", f.Dst, target, err, f.Link)
					}
					continue
				}
				var want []byte
				var err error
				switch {
				case f.Program != "":
					want, err = os.ReadFile(hostPlatform().Binary(o.BinDir, f.Program))
				case f.Embedded != "":
					want, err = fs.ReadFile(packaging.FS, f.Embedded)
				default:
					want, err = os.ReadFile(filepath.Join(o.Root, f.Doc))
				}
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
					t.Errorf("%s is not its source (%v)", f.Dst, err)
				}
			}
		})
	}
}
