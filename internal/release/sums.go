package release

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moltfleet/molt/updater/pack"
)

// Names of the checksum file and its signature.
const (
	SumsName      = "SHA256SUMS"
	SignatureName = SumsName + ".minisig"
)

// Sums is the content of SHA256SUMS for arts, in sha256sum's format
// ("HASH  NAME"), which "sha256sum -c SHA256SUMS" checks.
func Sums(arts []Artifact) []byte {
	var b []byte
	for _, a := range arts {
		b = fmt.Appendf(b, "%s  %s\n", a.SHA256, a.Name)
	}
	return b
}

// WriteSums writes SHA256SUMS for arts and, when o.Key is set, its
// minisign signature SHA256SUMS.minisig ("minisign -Vm SHA256SUMS -p
// molt.pub", or "molt pack verify-file"). A stale signature is removed
// when there is no key, so that it never vouches for other sums.
func WriteSums(o Options, arts []Artifact) ([]Artifact, error) {
	sums := Sums(arts)
	path := filepath.Join(o.Out, SumsName)
	a, err := writeFile(path, func(w io.Writer) error { _, err := w.Write(sums); return err })
	if err != nil {
		return nil, err
	}
	sigPath := filepath.Join(o.Out, SignatureName)
	if o.Key == nil {
		if err := os.Remove(sigPath); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		return []Artifact{a}, nil
	}
	sig := pack.SignFile(*o.Key, sums, SumsName, o.Now)
	s, err := writeFile(sigPath, func(w io.Writer) error { _, err := w.Write(sig); return err })
	if err != nil {
		return nil, err
	}
	return []Artifact{a, s}, nil
}
