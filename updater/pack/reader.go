package pack

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxEntries bounds the number of files in a pack: the binaries need two
// per platform, but a workload's tree (a bundled runtime) can be thousands
// of files. The central directory's records, about 200 bytes each, stay a
// few MB.
const MaxEntries = 16384

// DefaultMaxPackSize bounds a whole pack (compressed file and the sum of its
// uncompressed entries) unless the caller chooses another limit.
const DefaultMaxPackSize int64 = 2 << 30

var (
	// ErrBadPack: the container is not a well-formed pack (not a zip,
	// manifest or signature missing, duplicate or unexpected entries).
	ErrBadPack = errors.New("bad pack")
	// ErrUnsafePath: an entry's name would escape the pack when extracted
	// (../, absolute, backslashes, symlinks).
	ErrUnsafePath = errors.New("path escapes the pack")
)

// Reader reads a pack file. Nothing in it but the manifest and its
// signature is trusted before Verify succeeds; artifacts are checked
// against the manifest while they stream.
type Reader struct {
	closer   io.Closer
	zr       *zip.Reader
	files    map[string]*zip.File
	manifest []byte
	sig      []byte
	verified *Manifest
}

// Open opens a pack with the default size limit (DefaultMaxPackSize).
func Open(path string) (*Reader, error) { return OpenLimit(path, DefaultMaxPackSize) }

// OpenLimit opens a pack, refusing one whose file or total uncompressed
// content is larger than maxSize (ErrTooLarge).
func OpenLimit(path string, maxSize int64) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadPack, path)
	}
	r, err := NewReader(f, st.Size(), maxSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a pack of size bytes from ra (e.g. an upload spooled to a
// temporary file). The caller keeps ra open while the Reader is used.
func NewReader(ra io.ReaderAt, size, maxSize int64) (*Reader, error) {
	if size > maxSize {
		return nil, fmt.Errorf("%w: pack is %d bytes, the limit is %d", ErrTooLarge, size, maxSize)
	}
	// archive/zip allocates for every central directory record before we
	// see any: read the count from the end record first.
	if n, ok := zipEntryCount(ra, size); ok && n > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, the limit is %d", ErrTooLarge, n, MaxEntries)
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		return nil, fmt.Errorf("%w: not a zip archive: %v", ErrBadPack, err)
	}
	if len(zr.File) > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, the limit is %d", ErrTooLarge, len(zr.File), MaxEntries)
	}
	r := &Reader{zr: zr, files: make(map[string]*zip.File, len(zr.File))}
	folded := make(map[string]string, len(zr.File))
	var total uint64
	for _, f := range zr.File {
		name := f.Name
		if f.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: entry %q is a symbolic link", ErrUnsafePath, name)
		}
		if strings.HasSuffix(name, "/") {
			// Directory entries carry no content; zip tools add them.
			if !SafePath(strings.TrimSuffix(name, "/")) {
				return nil, fmt.Errorf("%w: entry %q", ErrUnsafePath, name)
			}
			continue
		}
		if !SafePath(name) {
			return nil, fmt.Errorf("%w: entry %q", ErrUnsafePath, name)
		}
		if _, dup := r.files[name]; dup {
			return nil, fmt.Errorf("%w: duplicate entry %q", ErrBadPack, name)
		}
		// Two names that differ only in case are one file on Windows and
		// macOS: refuse them rather than let extraction pick one.
		if other, dup := folded[strings.ToLower(name)]; dup {
			return nil, fmt.Errorf("%w: entries %q and %q differ only in case", ErrBadPack, other, name)
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return nil, fmt.Errorf("%w: entry %q uses unsupported compression method %d", ErrBadPack, name, f.Method)
		}
		// Compared before adding: declared sizes are attacker-chosen
		// and could wrap the sum.
		if f.UncompressedSize64 > uint64(maxSize)-total {
			return nil, fmt.Errorf("%w: pack content exceeds the limit of %d bytes", ErrTooLarge, maxSize)
		}
		total += f.UncompressedSize64
		r.files[name] = f
		folded[strings.ToLower(name)] = name
	}
	if r.manifest, err = r.readSmall(ManifestName, MaxManifestSize); err != nil {
		return nil, err
	}
	if r.sig, err = r.readSmall(SignatureName, MaxSignatureSize); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reader) readSmall(name string, limit int64) ([]byte, error) {
	f, ok := r.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: no %s in the pack", ErrBadPack, name)
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrTooLarge, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPack, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPack, name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrTooLarge, limit)
	}
	return b, nil
}

// ManifestBytes is manifest.json as stored (verify before trusting it).
func (r *Reader) ManifestBytes() []byte { return r.manifest }

// SignatureBytes is manifest.json.sig as stored.
func (r *Reader) SignatureBytes() []byte { return r.sig }

// Contains reports whether the pack stores a file at path.
func (r *Reader) Contains(path string) bool {
	_, ok := r.files[path]
	return ok
}

// UnverifiedManifest parses the manifest without checking its signature,
// for display only (molt pack inspect).
func (r *Reader) UnverifiedManifest() (*Manifest, error) { return ParseManifest(r.manifest) }

// Verify checks the manifest's signature against keys, then that the pack
// holds exactly the files the manifest names (Manifest.Files: the binaries
// and every workload file), with the sizes it names. It does not read the
// artifacts: their hashes are checked by OpenArtifact
// (or VerifyAll).
func (r *Reader) Verify(keys []Key) (*Manifest, error) {
	m, err := VerifyManifest(r.manifest, r.sig, keys)
	if err != nil {
		return nil, err
	}
	if err := r.checkEntries(m); err != nil {
		return nil, err
	}
	r.verified = m
	return m, nil
}

func (r *Reader) checkEntries(m *Manifest) error {
	named := map[string]bool{ManifestName: true, SignatureName: true}
	for _, a := range m.Files() {
		named[a.Path] = true
		f, ok := r.files[a.Path]
		if !ok {
			return fmt.Errorf("%w: %s is not in the pack", ErrBadPack, a.Path)
		}
		if f.UncompressedSize64 != uint64(a.Size) {
			return fmt.Errorf("%s: %w: manifest says %d bytes, the pack holds %d", a.Path, ErrSizeMismatch, a.Size, f.UncompressedSize64)
		}
	}
	for name := range r.files {
		if !named[name] {
			return fmt.Errorf("%w: entry %q is not named by the manifest", ErrBadPack, name)
		}
	}
	return nil
}

func isURL(p string) bool {
	return strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://")
}

// OpenArtifact streams one artifact of the pack. The reader fails with
// ErrSizeMismatch or ErrHashMismatch at EOF when the bytes do not match a;
// only a read to EOF without error has verified the file.
func (r *Reader) OpenArtifact(a Artifact) (io.ReadCloser, error) {
	if isURL(a.Path) {
		return nil, fmt.Errorf("%w: %s is stored outside the pack", ErrBadPack, a.Path)
	}
	f, ok := r.files[a.Path]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the pack", ErrBadPack, a.Path)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPack, a.Path, err)
	}
	return &artifactReader{v: NewVerifyingReader(zipErrs{rc, a.Path}, a), c: rc}, nil
}

type artifactReader struct {
	v *VerifyingReader
	c io.Closer
}

func (a *artifactReader) Read(p []byte) (int, error) { return a.v.Read(p) }
func (a *artifactReader) Close() error               { return a.c.Close() }

// zipErrs names the entry in archive/zip's own errors (checksum, format).
type zipErrs struct {
	r    io.Reader
	name string
}

func (z zipErrs) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %s: corrupt entry: %v", ErrBadPack, z.name, err)
	}
	return n, err
}

// VerifyAll is Verify plus a full read of every file in the pack (binaries
// and workload files), so that each file's size and SHA-256 are checked.
func (r *Reader) VerifyAll(keys []Key) (*Manifest, error) {
	m, err := r.Verify(keys)
	if err != nil {
		return nil, err
	}
	if err := r.checkArtifacts(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (r *Reader) checkArtifacts(m *Manifest) error {
	for _, a := range m.Files() {
		rc, err := r.OpenArtifact(a)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Close releases the pack file (a no-op for NewReader's readers).
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// zipEntryCount reads the entry count of the zip's end of central directory
// record, found as archive/zip finds it: the last signature whose comment
// length fits. A zip64 count (0xFFFF) is reported as such: packs never
// need zip64.
func zipEntryCount(ra io.ReaderAt, size int64) (uint64, bool) {
	const recLen = 22
	tail := int64(recLen + 0xFFFF)
	if tail > size {
		tail = size
	}
	buf := make([]byte, tail)
	if _, err := ra.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return 0, false
	}
	for i := len(buf) - recLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != 0x06054b50 {
			continue
		}
		if commentLen := int(binary.LittleEndian.Uint16(buf[i+20:])); i+recLen+commentLen <= len(buf) {
			return uint64(binary.LittleEndian.Uint16(buf[i+10:])), true
		}
	}
	return 0, false
}
