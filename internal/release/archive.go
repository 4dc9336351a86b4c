package release

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ArchiveName is the archive of p's binaries: molt_1.5.0_linux_amd64.tar.gz,
// molt_1.5.0_windows_amd64.zip.
func ArchiveName(version string, p Platform) string {
	base := "molt_" + version + "_" + p.Dir()
	if p.OS == "windows" {
		return base + ".zip"
	}
	return base + ".tar.gz"
}

// archiveEntry is one file of an archive.
type archiveEntry struct {
	name string // inside the archive's top directory
	src  string
	mode int64
}

// Archive writes p's archive: one top directory named like the archive,
// holding the three binaries (mode 0755), the README and the licence,
// each with o.MTime, owned by root, in a fixed order.
func Archive(o Options, p Platform) (Artifact, error) {
	name := ArchiveName(o.Version, p)
	top := "molt_" + o.Version + "_" + p.Dir()
	var entries []archiveEntry
	for _, prog := range Programs {
		entries = append(entries, archiveEntry{p.Exe(prog), p.Binary(o.BinDir, prog), 0o755})
	}
	docs, err := docFiles(o.Root)
	if err != nil {
		return Artifact{}, err
	}
	for _, d := range docs {
		entries = append(entries, archiveEntry{filepath.Base(d), d, 0o644})
	}
	return writeFile(filepath.Join(o.Out, name), func(w io.Writer) error {
		if p.OS == "windows" {
			return writeZip(w, top, entries, o)
		}
		return writeTarGz(w, top, entries, o)
	})
}

func writeTarGz(w io.Writer, top string, entries []archiveEntry, o Options) error {
	// No name and no time in the gzip header: same input, same bytes.
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o755, ModTime: o.MTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	for _, e := range entries {
		if err := func() error {
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + e.name, Mode: e.mode, Size: st.Size(), ModTime: o.MTime, Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			if err == nil && n != st.Size() {
				err = fmt.Errorf("%s changed while it was read", e.src)
			}
			return err
		}(); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, top string, entries []archiveEntry, o Options) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		if err := func() error {
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			defer f.Close()
			hdr := &zip.FileHeader{Name: top + "/" + e.name, Method: zip.Deflate, Modified: o.MTime.UTC()}
			hdr.SetMode(os.FileMode(e.mode))
			zf, err := zw.CreateHeader(hdr)
			if err != nil {
				return err
			}
			_, err = io.Copy(zf, f)
			return err
		}(); err != nil {
			return err
		}
	}
	return zw.Close()
}
