package pack

import (
	"archive/zip"
	"fmt"
	"io"
	"time"
)

// Resign replaces the signature of the pack at path with one by sk, e.g.
// after a key rotation. The old signature is not checked (its key may be
// retired), but the manifest must parse and every artifact must match it,
// so a new signature never vouches for a pack that does not verify. The
// pack is rewritten atomically; artifacts are copied without recompressing.
func Resign(path string, sk SecretKey, now time.Time) error {
	r, err := Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	m, err := r.UnverifiedManifest()
	if err != nil {
		return err
	}
	if err := r.checkEntries(m); err != nil {
		return err
	}
	if err := r.checkArtifacts(m); err != nil {
		return err
	}
	sig := Sign(sk, r.manifest, now)
	return writeAtomic(path, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		for _, f := range r.zr.File {
			if f.Name == SignatureName {
				continue
			}
			if err := zw.Copy(f); err != nil {
				return fmt.Errorf("copy %s: %w", f.Name, err)
			}
		}
		hdr := &zip.FileHeader{Name: SignatureName, Method: zip.Store, Modified: m.Released}
		hdr.SetMode(0o644)
		sw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := sw.Write(sig); err != nil {
			return err
		}
		return zw.Close()
	}, func(tmp string) error {
		// The copy is complete: let go of the old pack before it is
		// replaced (Windows does not rename over an open file).
		r.Close()
		nr, err := Open(tmp)
		if err != nil {
			return err
		}
		defer nr.Close()
		_, err = nr.Verify([]Key{sk.Public()})
		return err
	})
}
