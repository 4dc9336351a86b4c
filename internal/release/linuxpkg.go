package release

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/moltfleet/molt/packaging"
)

// PackageFile is one file of a deb or rpm package.
type PackageFile struct {
	// Program is a binary from the bin dir; else Embedded names a file
	// of packaging.FS; else Doc names a file of the module root.
	Program, Embedded, Doc string
	// Link makes Dst a symbolic link to Link.
	Link string
	Dst  string
	Mode fs.FileMode
}

// PackageSpec is what one package holds.
type PackageSpec struct {
	Name, Description string
	Files             []PackageFile
	// Maintainer scripts, as names in packaging.FS. Each is written for
	// both formats: deb passes configure/remove/upgrade..., rpm 1 or 2
	// (install, upgrade) and 0 or 1 (remove, upgrade).
	PostInstall, PreRemove, PostRemove string
}

// LibDir is where the agent package puts its binaries: the bootstrap copy
// from which the home is laid out. The home (/opt/molt) holds the versions
// molt manages; the package never writes there.
const LibDir = "/usr/lib/molt"

// UnitDir is where both packages put their systemd unit.
const UnitDir = "/usr/lib/systemd/system"

// AgentPackage is molt-agent: the agent side of a host.
var AgentPackage = PackageSpec{
	Name: "molt-agent",
	Description: "molt agent and supervisor (fleet upgrades for host agents)\n" +
		"Installs molt-agent and molt-supervisor in /usr/lib/molt and the\n" +
		"molt-supervisor systemd unit. Once an agent.yaml is in place\n" +
		"(/etc/molt/agent.yaml), it lays out the agent home /opt/molt and\n" +
		"starts the service; molt then upgrades the agent itself.",
	Files: []PackageFile{
		{Program: "molt-agent", Dst: LibDir + "/molt-agent", Mode: 0o755},
		{Program: "molt-supervisor", Dst: LibDir + "/molt-supervisor", Mode: 0o755},
		{Embedded: "agent/molt-agent-setup", Dst: LibDir + "/molt-agent-setup", Mode: 0o755},
		{Link: LibDir + "/molt-agent", Dst: "/usr/bin/molt-agent"},
		{Link: LibDir + "/molt-supervisor", Dst: "/usr/bin/molt-supervisor"},
		{Embedded: "systemd/molt-supervisor.service", Dst: UnitDir + "/molt-supervisor.service", Mode: 0o644},
		{Doc: "README.md", Dst: "/usr/share/doc/molt-agent/README.md", Mode: 0o644},
		{Doc: Licence, Dst: "/usr/share/doc/molt-agent/copyright", Mode: 0o644},
	},
	PostInstall: "agent/postinstall.sh",
	PreRemove:   "agent/preremove.sh",
	PostRemove:  "agent/postremove.sh",
}

// ServerPackage is molt-server: the control server.
var ServerPackage = PackageSpec{
	Name: "molt-server",
	Description: "molt control server and CLI (fleet upgrades for host agents)\n" +
		"Installs molt and the molt-server systemd unit, which runs\n" +
		"molt serve as the system user molt with its data in /var/lib/molt,\n" +
		"once /etc/molt/server.yaml exists.",
	Files: []PackageFile{
		{Program: "molt", Dst: "/usr/bin/molt", Mode: 0o755},
		{Embedded: "systemd/molt-server.service", Dst: UnitDir + "/molt-server.service", Mode: 0o644},
		{Embedded: "server/server.yaml.example", Dst: "/usr/share/doc/molt-server/server.yaml.example", Mode: 0o644},
		{Doc: "README.md", Dst: "/usr/share/doc/molt-server/README.md", Mode: 0o644},
		{Doc: Licence, Dst: "/usr/share/doc/molt-server/copyright", Mode: 0o644},
	},
	PostInstall: "server/postinstall.sh",
	PreRemove:   "server/preremove.sh",
	PostRemove:  "server/postremove.sh",
}

// packagers are the nfpm back ends by format.
var packagers = map[string]nfpm.Packager{"deb": deb.Default, "rpm": rpm.DefaultRPM}

// LinuxPackage writes spec as a deb or rpm package for p into o.Out, named
// as each format names its packages (molt-agent_1.5.0_amd64.deb,
// molt-agent-1.5.0-1.x86_64.rpm).
func LinuxPackage(o Options, p Platform, spec PackageSpec, format string) (Artifact, error) {
	pkgr, ok := packagers[format]
	if !ok {
		return Artifact{}, fmt.Errorf("package format %q: want deb or rpm", format)
	}
	// nfpm reads every source from a file: write the embedded ones out.
	tmp, err := os.MkdirTemp("", "molt-release-*")
	if err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(tmp)
	fromFS := func(name string) (string, error) {
		b, err := fs.ReadFile(packaging.FS, name)
		if err != nil {
			return "", err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		return dst, os.WriteFile(dst, b, 0o755)
	}
	var contents files.Contents
	for _, f := range spec.Files {
		c := &files.Content{Destination: f.Dst, FileInfo: &files.ContentFileInfo{Mode: f.Mode, MTime: o.MTime, Owner: "root", Group: "root"}}
		switch {
		case f.Link != "":
			c.Type, c.Source = files.TypeSymlink, f.Link
			c.FileInfo.Mode = 0
		case f.Program != "":
			c.Source = p.Binary(o.BinDir, f.Program)
		case f.Embedded != "":
			if c.Source, err = fromFS(f.Embedded); err != nil {
				return Artifact{}, err
			}
		default:
			c.Source = filepath.Join(o.Root, f.Doc)
		}
		contents = append(contents, c)
	}
	var scripts nfpm.Scripts
	for dst, name := range map[*string]string{&scripts.PostInstall: spec.PostInstall, &scripts.PreRemove: spec.PreRemove, &scripts.PostRemove: spec.PostRemove} {
		if *dst, err = fromFS(name); err != nil {
			return Artifact{}, err
		}
	}
	info := &nfpm.Info{
		Name:        spec.Name,
		Arch:        p.Arch,
		Platform:    "linux",
		Version:     o.Version,
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  "molt <molt@moltfleet.invalid>",
		Description: spec.Description,
		Vendor:      "molt",
		License:     "Apache-2.0",
		Homepage:    "https://github.com/moltfleet/molt",
		MTime:       o.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts:  scripts,
			RPM:      nfpm.RPM{BuildHost: "molt-release", Summary: firstLine(spec.Description)},
		},
	}
	if o.Compression != "" {
		info.Deb.Compression, info.RPM.Compression = o.Compression, o.Compression
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return Artifact{}, err
	}
	name := pkgr.ConventionalFileName(info)
	return writeFile(filepath.Join(o.Out, name), func(w io.Writer) error { return pkgr.Package(info, w) })
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
