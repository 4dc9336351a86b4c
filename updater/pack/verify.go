package pack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
)

// Sentinel errors; every failure wraps one of them (or ErrBadManifest,
// ErrBadKey) so that callers decide with errors.Is.
var (
	// ErrUntrustedKey: the manifest was signed by a key that is not among
	// the trusted keys.
	ErrUntrustedKey = errors.New("untrusted key")
	// ErrBadSignature: the signature is malformed or does not match the
	// manifest.
	ErrBadSignature = errors.New("bad signature")
	// ErrTooLarge: a pack, manifest, signature or artifact is over its
	// size limit.
	ErrTooLarge = errors.New("too large")
	// ErrSizeMismatch: an artifact's length differs from the manifest.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrHashMismatch: an artifact's SHA-256 differs from the manifest.
	ErrHashMismatch = errors.New("sha256 mismatch")
	// ErrMissingPlatform: the manifest has no artifacts for a platform.
	ErrMissingPlatform = errors.New("missing platform")
)

// Sign signs manifest bytes with sk in minisign's default (pre-hashed)
// format. The trusted comment records the time and file name, as the
// minisign tool does.
func Sign(sk SecretKey, manifest []byte, now time.Time) []byte {
	r := minisign.NewReader(bytes.NewReader(manifest))
	_, _ = io.Copy(io.Discard, r) // reading from a bytes.Reader cannot fail
	trusted := "timestamp:" + strconv.FormatInt(now.Unix(), 10) + "\tfile:" + ManifestName + "\thashed"
	return r.SignWithComments(sk.priv, trusted, "signature from molt secret key "+sk.ID())
}

// SignatureKeyID returns the id of the key that made sig, without checking
// the signature.
func SignatureKeyID(sig []byte) (string, error) {
	s, err := parseSignature(sig)
	if err != nil {
		return "", err
	}
	return FormatKeyID(s.KeyID), nil
}

// SignatureComment returns the signature's trusted comment (only trustworthy
// after VerifyManifest succeeded).
func SignatureComment(sig []byte) (string, error) {
	s, err := parseSignature(sig)
	if err != nil {
		return "", err
	}
	return s.TrustedComment, nil
}

func parseSignature(sig []byte) (minisign.Signature, error) {
	var s minisign.Signature
	if len(sig) > MaxSignatureSize {
		return s, fmt.Errorf("%w: signature %w: larger than %d bytes", ErrBadSignature, ErrTooLarge, MaxSignatureSize)
	}
	if err := s.UnmarshalText(sig); err != nil {
		return s, fmt.Errorf("%w: malformed %s: %s", ErrBadSignature, SignatureName, strings.TrimPrefix(err.Error(), "minisign: "))
	}
	return s, nil
}

// VerifyManifest checks that sig is a valid signature of manifest by one of
// keys, then parses the manifest. Errors wrap ErrTooLarge, ErrBadSignature,
// ErrUntrustedKey or ErrBadManifest.
func VerifyManifest(manifest, sig []byte, keys []Key) (*Manifest, error) {
	if len(manifest) > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", ManifestName, ErrTooLarge, MaxManifestSize)
	}
	s, err := parseSignature(sig)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: manifest signed by key %s, and no key is trusted", ErrUntrustedKey, FormatKeyID(s.KeyID))
	}
	// Key ids are not secret and could collide: try every trusted key
	// that claims the id.
	var tried []string
	for _, k := range keys {
		if k.pub.ID() != s.KeyID {
			continue
		}
		if minisign.Verify(k.pub, manifest, sig) {
			return ParseManifest(manifest)
		}
		tried = append(tried, k.ID())
	}
	if len(tried) == 0 {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID()
		}
		return nil, fmt.Errorf("%w: manifest signed by key %s, which is not trusted (trusted: %s)",
			ErrUntrustedKey, FormatKeyID(s.KeyID), strings.Join(ids, ", "))
	}
	return nil, fmt.Errorf("%w: signature by key %s does not match %s", ErrBadSignature, tried[0], ManifestName)
}

// PlatformArtifacts returns the files of platform ("linux/amd64"), or an
// error wrapping ErrMissingPlatform that lists the platforms present.
func (m *Manifest) PlatformArtifacts(platform string) (map[string]Artifact, error) {
	if files, ok := m.Artifacts[platform]; ok {
		return files, nil
	}
	return nil, fmt.Errorf("%w: %s is not in pack %s (it has %s)", ErrMissingPlatform, platform, m.Version, strings.Join(m.Platforms(), ", "))
}

// Platforms lists the manifest's platforms, sorted.
func (m *Manifest) Platforms() []string {
	ps := make([]string, 0, len(m.Artifacts))
	for p := range m.Artifacts {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// VerifyingReader passes an artifact's bytes through while counting and
// hashing them. It fails with ErrSizeMismatch as soon as more than the
// artifact's size arrives, and at EOF when the size or the SHA-256 differs
// (ErrSizeMismatch, ErrHashMismatch). A caller that stops before EOF has
// verified nothing.
type VerifyingReader struct {
	r    io.Reader
	a    Artifact
	h    hash.Hash
	n    int64
	err  error
	name string
}

// NewVerifyingReader verifies r against a while it is read.
func NewVerifyingReader(r io.Reader, a Artifact) *VerifyingReader {
	return &VerifyingReader{r: r, a: a, h: sha256.New(), name: a.Path}
}

// ResumeVerifyingReader continues a verification of which the first done
// bytes were read before (e.g. a partial download on disk): h must already hold
// their hash. Used by the downloader to resume without rereading.
func ResumeVerifyingReader(r io.Reader, a Artifact, h hash.Hash, done int64) *VerifyingReader {
	return &VerifyingReader{r: r, a: a, h: h, n: done, name: a.Path}
}

// N is the number of bytes verified so far (including a resumed prefix).
func (v *VerifyingReader) N() int64 { return v.n }

func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	// Read one byte more than allowed so an overlong stream is noticed
	// without consuming it in full.
	if rem := v.a.Size - v.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	if v.n > v.a.Size {
		v.err = fmt.Errorf("%s: %w: more than the %d bytes the manifest names", v.name, ErrSizeMismatch, v.a.Size)
		return 0, v.err
	}
	v.h.Write(p[:n])
	if err == io.EOF {
		if v.n != v.a.Size {
			v.err = fmt.Errorf("%s: %w: manifest says %d bytes, got %d", v.name, ErrSizeMismatch, v.a.Size, v.n)
			return n, v.err
		}
		if sum := hex.EncodeToString(v.h.Sum(nil)); sum != v.a.SHA256 {
			v.err = fmt.Errorf("%s: %w: manifest says %s, file has %s", v.name, ErrHashMismatch, v.a.SHA256, sum)
			return n, v.err
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = err
	}
	return n, err
}
