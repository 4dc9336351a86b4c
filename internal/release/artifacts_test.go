package release

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/updater/pack"
)

// Each platform's archive: one top directory with the three binaries
// (0755), the README and the licence (0644), root-owned, at the release's time.
func TestArchives(t *testing.T) {
	o := fakeOptions(t, "1.5.0", "linux/arm64", "windows/amd64")
	for _, tc := range []struct {
		plat string
		want []string
	}{
		{"linux/arm64", []string{"-rwxr-xr-x molt_1.5.0_linux_arm64/molt", "-rwxr-xr-x molt_1.5.0_linux_arm64/molt-agent", "-rwxr-xr-x molt_1.5.0_linux_arm64/molt-supervisor", "-rw-r--r-- molt_1.5.0_linux_arm64/README.md", "-rw-r--r-- molt_1.5.0_linux_arm64/LICENSE"}},
		{"windows/amd64", []string{"-rwxr-xr-x molt_1.5.0_windows_amd64/molt.exe", "-rwxr-xr-x molt_1.5.0_windows_amd64/molt-agent.exe", "-rwxr-xr-x molt_1.5.0_windows_amd64/molt-supervisor.exe", "-rw-r--r-- molt_1.5.0_windows_amd64/README.md", "-rw-r--r-- molt_1.5.0_windows_amd64/LICENSE"}},
	} {
		t.Run(tc.plat, func(t *testing.T) {
			p, _ := ParsePlatform(tc.plat)
			a, err := Archive(o, p)
			if err != nil {
				t.Fatal(err)
			}
			got := listArchive(t, a.Path)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("%s (-want +got):\n%s", a.Name, d)
			}
		})
	}
}

// listArchive lists a .tar.gz or .zip as "MODE NAME", checking owners and
// times on the way.
func listArchive(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if !f.Modified.Equal(testMTime) {
				t.Errorf("%s: time %s", f.Name, f.Modified)
			}
			out = append(out, f.Mode().String()+" "+f.Name)
		}
		return out
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(testMTime) {
			t.Errorf("%s: uid %d gid %d time %s", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		if h.Typeflag == tar.TypeReg {
			out = append(out, h.FileInfo().Mode().String()+" "+h.Name)
		}
	}
}

// The same binaries and time give the same bytes, so a release can be
// rebuilt and compared; SHA256SUMS lists every artifact and verifies.
func TestMakeReproducibleAndSigned(t *testing.T) {
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := fakeOptions(t, "1.5.0", "linux/amd64", "darwin/arm64", "windows/amd64")
	o.Key = &sec
	first, err := Make(o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range first {
		names = append(names, a.Name)
	}
	want := []string{
		"molt-agent-1.5.0-1.x86_64.rpm", "molt-agent_1.5.0_amd64.deb",
		"molt-server-1.5.0-1.x86_64.rpm", "molt-server_1.5.0_amd64.deb",
		"molt_1.5.0_darwin_arm64.tar.gz", "molt_1.5.0_linux_amd64.tar.gz", "molt_1.5.0_windows_amd64.zip",
		SumsName, SignatureName,
	}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("artifacts (-want +got):\n%s", d)
	}
	sums, _ := os.ReadFile(filepath.Join(o.Out, SumsName))
	sig, _ := os.ReadFile(filepath.Join(o.Out, SignatureName))
	if _, err := pack.VerifyFile(sums, sig, []pack.Key{pub}); err != nil {
		t.Errorf("SHA256SUMS.minisig: %v", err)
	}
	for _, a := range first[:len(first)-2] {
		if !strings.Contains(string(sums), a.SHA256+"  "+a.Name+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", a.Name, sums)
		}
	}
	if tool, ok := testtool.Have(t, "sha256sum", "apt-get install coreutils"); ok {
		run(t, nil, "sh", "-c", "cd '"+o.Out+"' && "+tool+" -c --quiet "+SumsName)
	}

	o.Out = t.TempDir()
	o.Now = o.Now.Add(time.Hour)
	second, err := Make(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first[:len(first)-1] { // the signature's time differs
		if first[i].SHA256 != second[i].SHA256 {
			t.Errorf("%s differs between two builds of the same input", first[i].Name)
		}
	}

	o.Key, o.Out = nil, t.TempDir()
	unsigned, err := Make(o)
	if err != nil {
		t.Fatal(err)
	}
	if last := unsigned[len(unsigned)-1].Name; last != SumsName {
		t.Errorf("without a key the last artifact is %s", last)
	}
}

// The MSI: wixl builds it; it holds the three binaries under Program
// Files\molt and the custom actions that register the service through
// molt-agent install and remove it through molt-supervisor uninstall.
func TestMSI(t *testing.T) {
	wixl := testtool.Need(t, "wixl", "apt-get install wixl")
	msiinfo := testtool.Need(t, "msiinfo", "apt-get install msitools")
	o := fakeOptions(t, "1.5.0-rc.1", "windows/amd64")
	o.Wixl = wixl
	a, err := MSI(o, Platform{"windows", "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "molt_1.5.0-rc.1_windows_amd64.msi" {
		t.Errorf("name %s", a.Name)
	}
	table := func(name string) string { return run(t, nil, msiinfo, "export", a.Path, name) }
	for _, tc := range []struct{ table, want string }{
		{"File", "molt.exe"},
		{"File", "molt-agent.exe"},
		{"File", "molt-supervisor.exe"},
		{"Directory", "INSTALLDIR\tProgramFiles64Folder\tmolt"},
		{"Property", "ProductVersion\t1.5.0"},
		{"Property", "UpgradeCode\t{" + msiUpgradeCode + "}"},
		{"Property", "ProductCode\t{" + productCode("1.5.0-rc.1") + "}"},
		// 3154: an exe from an installed file, deferred, as LocalSystem,
		// its exit code ignored.
		{"CustomAction", "SetupAgent\t3154\tmolt_agent.exe\tinstall --config \"[AGENTCONFIG]\""},
		{"CustomAction", "RemoveService\t3154\tmolt_supervisor.exe\tuninstall --home \"[CommonAppDataFolder]molt\""},
		{"InstallExecuteSequence", "SetupAgent\tAGENTCONFIG AND NOT REMOVE AND NOT WIX_UPGRADE_DETECTED"},
		{"InstallExecuteSequence", "RemoveService\tREMOVE=\"ALL\" AND NOT UPGRADINGPRODUCTCODE"},
	} {
		if got := table(tc.table); !strings.Contains(got, tc.want) {
			t.Errorf("table %s lacks %q:\n%s", tc.table, tc.want, got)
		}
	}
}

func TestMSIVersion(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"1.5.0", "1.5.0", ""},
		{"1.5.0-rc.1", "1.5.0", ""},
		{"2.0.10+build.7", "2.0.10", ""},
		{"1.5", "", "MAJOR.MINOR.PATCH"},
		{"1.05.0", "", "not a number"},
		{"256.0.0", "", "at most 255.255.65535"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := MSIVersion(tc.in)
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("MSIVersion(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestMakeRefusesMissingBinary(t *testing.T) {
	o := fakeOptions(t, "1.5.0", "linux/amd64")
	o.Platforms = append(o.Platforms, "freebsd/amd64")
	if _, err := Make(o); !errors.Is(err, ErrMissingBinary) || !strings.Contains(err.Error(), "for freebsd/amd64") {
		t.Errorf("Make = %v, want %v naming freebsd/amd64", err, ErrMissingBinary)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) accepted", bad)
		}
	}
}
