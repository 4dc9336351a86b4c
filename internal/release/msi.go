package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/moltfleet/molt/packaging"
)

// MSIName is the Windows installer's file name.
func MSIName(version string, p Platform) string {
	return "molt_" + version + "_" + p.Dir() + ".msi"
}

// The installer's fixed GUIDs: the upgrade code ties every version
// together (a newer MSI replaces an older one); the component's must stay
// the same for as long as the component holds the same files.
const (
	msiUpgradeCode   = "6C1E8A52-3F0B-4C55-9D2B-2B7A4E1D9A01"
	msiComponentGUID = "8F0D6B7E-2C43-4E1A-A3C1-5D2E7F9B0C11"
)

// msiTimeout bounds one wixl run.
const msiTimeout = 5 * time.Minute

var wxsTemplate = template.Must(template.ParseFS(packaging.FS, "windows/molt.wxs.tmpl"))

// wxsData is what windows/molt.wxs.tmpl sees.
type wxsData struct {
	Version, MSIVersion, Arch, Dir          string
	ProductCode, UpgradeCode, ComponentGUID string
}

// MSIVersion is version as Windows Installer takes it: three numbers,
// without a pre-release or build suffix (1.5.0-rc.1 is 1.5.0).
func MSIVersion(version string) (string, error) {
	v := version
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("version %q: an MSI needs MAJOR.MINOR.PATCH", version)
	}
	for i, p := range parts {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || fmt.Sprint(n) != p {
			return "", fmt.Errorf("version %q: %q is not a number", version, p)
		}
		if limit := []int{255, 255, 65535}[i]; n > limit {
			return "", fmt.Errorf("version %q: an MSI allows at most 255.255.65535", version)
		}
	}
	return v, nil
}

// RenderWXS returns the WiX source of p's installer, its files taken from
// dir (relative: wixl takes no absolute source paths).
func RenderWXS(version string, p Platform, dir string) ([]byte, error) {
	mv, err := MSIVersion(version)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = wxsTemplate.Execute(&b, wxsData{
		Version: version, MSIVersion: mv, Arch: p.Arch, Dir: filepath.ToSlash(dir),
		ProductCode: productCode(version), UpgradeCode: msiUpgradeCode, ComponentGUID: msiComponentGUID,
	})
	return b.Bytes(), err
}

// productCode derives the product code from the version, so that
// building a version twice gives the same code (a random one would make
// two builds of one version two products).
func productCode(version string) string {
	h := sha256.Sum256([]byte("molt msi product " + version))
	h[6] = h[6]&0x0f | 0x50 // a name-based UUID
	h[8] = h[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// MSI builds p's Windows installer with wixl.
func MSI(o Options, p Platform) (Artifact, error) {
	tmp, err := os.MkdirTemp("", "molt-msi-*")
	if err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(tmp)
	for _, prog := range Programs {
		if err := copyFile(p.Binary(o.BinDir, prog), filepath.Join(tmp, p.Exe(prog))); err != nil {
			return Artifact{}, err
		}
	}
	for from, to := range map[string]string{"README.md": "README.md", Licence: "LICENSE.txt"} {
		if err := copyFile(filepath.Join(o.Root, from), filepath.Join(tmp, to)); err != nil {
			return Artifact{}, err
		}
	}
	wxs, err := RenderWXS(o.Version, p, ".")
	if err != nil {
		return Artifact{}, err
	}
	src := filepath.Join(tmp, "molt.wxs")
	if err := os.WriteFile(src, wxs, 0o644); err != nil {
		return Artifact{}, err
	}
	out, err := filepath.Abs(filepath.Join(o.Out, MSIName(o.Version, p)))
	if err != nil {
		return Artifact{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), msiTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Wixl, "-a", "x64", "-o", out, filepath.Base(src))
	cmd.Dir = tmp
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(out)
		return Artifact{}, fmt.Errorf("wixl: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return fileArtifact(out)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
