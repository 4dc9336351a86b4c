package server

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

func packRejected(format string, args ...any) error {
	return errf(http.StatusUnprocessableEntity, protocol.CodePackRejected, format, args...)
}

// extractTarPack unpacks a tar (optionally gzip) of a pack directory into
// dir under the zip's rules: the tar starts with manifest.json and
// manifest.json.sig, whose signature is checked before anything else is
// written; then it holds exactly the files the manifest names (binaries
// and workload files), each no larger than the manifest says, checked
// while it streams. Anything else (a file the manifest does not name, a
// link, a second copy) refuses the pack; the caller removes dir.
func extractTarPack(r io.Reader, dir string, keys []pack.Key) error {
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return packRejected("pack: bad gzip stream: %v", err)
		}
		defer zr.Close()
		in = zr
	}
	// A file that is no pack at all (a binary, a text, a truncated
	// download) must not be answered with the tar reader's "invalid tar
	// header": the operator uploaded the wrong file.
	tb := bufio.NewReader(in)
	if hdr, _ := tb.Peek(tarBlock); !looksLikeTar(hdr) {
		return packRejected("%s", errNotAPack)
	}
	tr := tar.NewReader(tb)
	var (
		man, sig []byte
		want     map[string]pack.Artifact // the files still to come, once the manifest is verified
		entries  int
	)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return packRejected("pack: not a tar archive of a pack directory: %v", err)
		}
		// Directory entries count too: they cost a header each.
		if entries++; entries > 2*pack.MaxEntries {
			return packRejected("pack: more than %d entries", 2*pack.MaxEntries)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir || name == "" {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return packRejected("pack: %s is not a regular file", h.Name)
		}
		if !pack.SafePath(name) {
			return packRejected("pack: %s is not a safe relative path", h.Name)
		}
		if want == nil {
			var limit int64
			var dst *[]byte
			switch {
			case name == pack.ManifestName && man == nil:
				dst, limit = &man, pack.MaxManifestSize
			case name == pack.SignatureName && sig == nil:
				dst, limit = &sig, pack.MaxSignatureSize
			default:
				return packRejected("pack: %s before %s and %s: a tar must start with them (or upload the zip molt pack build writes)", name, pack.ManifestName, pack.SignatureName)
			}
			if h.Size > limit {
				return packRejected("pack: %s is larger than %d bytes", name, limit)
			}
			src := &sourceReader{r: tr}
			if *dst, err = io.ReadAll(io.LimitReader(src, limit)); err != nil {
				return tarReadError(name, src, err)
			}
			if err := atomicfile.WriteFile(filepath.Join(dir, name), *dst, 0o644); err != nil {
				return err
			}
			if man == nil || sig == nil {
				continue
			}
			m, err := pack.VerifyManifest(man, sig, keys)
			if err != nil {
				return packRejected("pack refused: %v", err)
			}
			want = map[string]pack.Artifact{}
			var total int64
			for _, a := range m.Files() {
				want[a.Path] = a
				total += a.Size
			}
			// Sizes are signed, but still bound what this upload may
			// expand to.
			if total > protocol.MaxPackSize {
				return packRejected("pack: the manifest's files add up to %d bytes, the limit is %d", total, int64(protocol.MaxPackSize))
			}
			continue
		}
		a, ok := want[name]
		if !ok {
			if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name))); err == nil {
				return packRejected("pack: %s appears twice", name)
			}
			return packRejected("pack refused: entry %q is not named by the manifest", name)
		}
		delete(want, name)
		if h.Size != a.Size {
			return packRejected("pack refused: %s: %v: manifest says %d bytes, the tar holds %d", name, pack.ErrSizeMismatch, a.Size, h.Size)
		}
		if err := writeTarFile(tr, a, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	if want == nil {
		return packRejected("pack: no %s and %s in it", pack.ManifestName, pack.SignatureName)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for p := range want {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		return packRejected("pack refused: %s is not in the pack", missing[0])
	}
	return nil
}

// writeTarFile writes the tar's current entry to dst, checked against a
// (size, then SHA-256) while it streams.
func writeTarFile(tr *tar.Reader, a pack.Artifact, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	src := &sourceReader{r: tr}
	_, err = io.Copy(f, pack.NewVerifyingReader(src, a))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, pack.ErrSizeMismatch) || errors.Is(err, pack.ErrHashMismatch) {
			return packRejected("pack refused: %v", err)
		}
		return tarReadError(a.Path, src, err)
	}
	return nil
}

// tarReadError tells a cut or corrupt upload (the pack's fault: a
// truncated gzip stream, a short tar entry) from a failing disk.
func tarReadError(name string, src *sourceReader, err error) error {
	var mbe *http.MaxBytesError
	if src.err != nil && !errors.As(src.err, &mbe) {
		return packRejected("pack: %s: %v", name, src.err)
	}
	if src.err != nil {
		return src.err
	}
	return err
}

// sourceReader remembers the error of the reader it wraps, so that a copy
// can tell a bad upload from a failing disk.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// verifyPackDir checks dir's manifest signature against keys and every
// stored file's size and SHA-256 (binaries and workload files).
func verifyPackDir(dir string, keys []pack.Key) (*pack.Manifest, int64, error) {
	man, err := os.ReadFile(filepath.Join(dir, pack.ManifestName))
	if err != nil {
		return nil, 0, packRejected("pack: no %s in it", pack.ManifestName)
	}
	sig, err := os.ReadFile(filepath.Join(dir, pack.SignatureName))
	if err != nil {
		return nil, 0, packRejected("pack: no %s in it: sign it with molt pack sign", pack.SignatureName)
	}
	m, err := pack.VerifyManifest(man, sig, keys)
	if err != nil {
		return nil, 0, packRejected("pack refused: %v", err)
	}
	size := int64(len(man) + len(sig))
	for _, a := range m.Files() {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(a.Path)))
		if err != nil {
			return nil, 0, packRejected("pack refused: %s is missing", a.Path)
		}
		_, err = io.Copy(io.Discard, pack.NewVerifyingReader(f, a))
		f.Close()
		if err != nil {
			return nil, 0, packRejected("pack refused: %v", err)
		}
		size += a.Size
	}
	return m, size, nil
}

func (s *Server) handleReleaseImport(w http.ResponseWriter, r *http.Request, _ caller) error {
	// A pack of a few hundred MB over a slow link takes longer than the
	// server's read timeout for ordinary requests.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Minute))
	rel, err := s.ImportPack(r.Context(), r.Body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rel)
	return nil
}

// errNotAPack is the answer to an upload that is neither a zip nor a tar.
const errNotAPack = "not a molt pack (expected a zip made by molt pack build)"

// tarBlock is the size of a tar header.
const tarBlock = 512

// looksLikeTar reports whether hdr is a tar header: its checksum field
// matches the sum of its bytes (with the field itself as spaces), which
// holds for every tar flavour, old v7 ones without the "ustar" magic too.
func looksLikeTar(hdr []byte) bool {
	if len(hdr) < tarBlock {
		return false
	}
	field := strings.TrimRight(strings.TrimLeft(string(hdr[148:156]), " "), " \x00")
	want, err := strconv.ParseUint(field, 8, 32)
	if err != nil || field == "" {
		return false
	}
	var unsigned, signed int64
	for i, b := range hdr[:tarBlock] {
		if i >= 148 && i < 156 {
			b = ' '
		}
		unsigned += int64(b)
		signed += int64(int8(b))
	}
	return int64(want) == unsigned || int64(want) == signed
}

// zipMagic starts every zip file (a local file header).
var zipMagic = []byte("PK\x03\x04")

// extractZipPack spools a zip pack (what molt pack build writes) into
// packs, verifies its signature and entries against keys and extracts it
// into dir, every artifact checked against the manifest while it is
// written.
func extractZipPack(body io.Reader, packs, dir string, keys []pack.Key) error {
	r, err := pack.Spool(body, packs, protocol.MaxPackSize)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, pack.ErrBadPack) || errors.Is(err, pack.ErrTooLarge) || errors.Is(err, pack.ErrUnsafePath) || errors.Is(err, pack.ErrBadManifest) {
			return packRejected("pack: %v", err)
		}
		return err
	}
	defer r.Close()
	if _, err := r.Verify(keys); err != nil {
		return packRejected("pack refused: %v", err)
	}
	if err := r.Extract(dir); err != nil {
		if errors.Is(err, pack.ErrBadPack) || errors.Is(err, pack.ErrSizeMismatch) || errors.Is(err, pack.ErrHashMismatch) {
			return packRejected("pack refused: %v", err)
		}
		return err
	}
	return nil
}

// ImportPack verifies a pack and adds it as a release:
// data/packs/<version>/. The pack is the zip molt pack build writes, sent
// as is; a tar (optionally gzip) of an unpacked pack directory that starts
// with manifest.json and manifest.json.sig is accepted too, under the same
// rules (exactly the files the manifest names, workload files included).
// Either way the same checks run on the extracted directory before the
// release is recorded, and its files are served under
// /v1/packs/<version>/<path>.
func (s *Server) ImportPack(ctx context.Context, body io.Reader) (protocol.Release, error) {
	packs := filepath.Join(s.opt.DataDir, "packs")
	tmp, err := os.MkdirTemp(packs, ".incoming-")
	if err != nil {
		return protocol.Release{}, err
	}
	defer os.RemoveAll(tmp)
	reject := func(err error) (protocol.Release, error) {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == protocol.CodePackRejected {
			s.emit(ctx, event{ID: protocol.EvReleaseRejected, Msg: ae.Msg, Fields: map[string]string{"reason": ae.Msg}})
		}
		return protocol.Release{}, err
	}
	if len(s.opt.TrustedKeys) == 0 {
		return reject(packRejected("pack refused: the server trusts no signing key: start molt serve with --trusted-key FILE"))
	}
	br := bufio.NewReader(body)
	if magic, _ := br.Peek(len(zipMagic)); bytes.Equal(magic, zipMagic) {
		err = extractZipPack(br, packs, tmp, s.opt.TrustedKeys)
	} else {
		err = extractTarPack(br, tmp, s.opt.TrustedKeys)
	}
	if err != nil {
		return reject(err)
	}
	m, size, err := verifyPackDir(tmp, s.opt.TrustedKeys)
	if err != nil {
		return reject(err)
	}
	// The version is reserved while its files are published, without
	// holding s.mu (an upload to an object store takes a while): a second
	// import of it meanwhile is refused, so that no one overwrites the
	// files of a release being recorded or recorded already.
	s.mu.Lock()
	if _, ok := s.releases[m.Version]; ok || s.importing[m.Version] {
		s.mu.Unlock()
		return protocol.Release{}, conflict("release %s is already imported (remove it first to replace it)", m.Version)
	}
	s.importing[m.Version] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.importing, m.Version)
		s.mu.Unlock()
	}()
	// The files are durable before the release is recorded: a release row
	// never points at files a power loss or a failed upload took away.
	if err := s.art.Publish(ctx, m.Version, tmp); err != nil {
		return protocol.Release{}, fmt.Errorf("import %s: %w", m.Version, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rel := protocol.Release{Version: m.Version, Released: m.Released, Floor: m.Floor, Platforms: m.Platforms(), Size: size}
	err = s.change(ctx, func(w *writer) error {
		rel.Imported = w.now
		if err := w.tx.InsertRelease(rel); err != nil {
			return err
		}
		rr := releaseRec{Version: rel.Version, Floor: rel.Floor, Released: rel.Released, Platforms: map[string]bool{}}
		for _, p := range rel.Platforms {
			rr.Platforms[p] = true
		}
		w.then(func() { s.releases[rel.Version] = rr })
		return w.event(event{ID: protocol.EvReleaseImported, Msg: fmt.Sprintf("release %s imported (%s)", rel.Version, strings.Join(rel.Platforms, ", ")), Fields: map[string]string{"version": rel.Version}})
	})
	if err != nil {
		if rerr := s.art.Remove(context.WithoutCancel(ctx), m.Version); rerr != nil {
			s.log.Warn("remove the files of a release not recorded: " + rerr.Error())
		}
		return protocol.Release{}, err
	}
	return rel, nil
}

func (s *Server) listReleases(ctx context.Context) ([]protocol.Release, error) {
	out, err := s.st.Releases(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return semver.Less(out[j].Version, out[i].Version) })
	s.addQuarantines(out)
	return out, nil
}

func (s *Server) handleReleaseList(w http.ResponseWriter, r *http.Request, _ caller) error {
	rels, err := s.listReleases(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.Releases{Releases: rels})
	return nil
}

func (s *Server) handleReleaseShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	rels, err := s.listReleases(r.Context())
	if err != nil {
		return err
	}
	for _, rel := range rels {
		if rel.Version == r.PathValue("version") {
			writeJSON(w, 200, rel)
			return nil
		}
	}
	return notFound("release %s is not imported", r.PathValue("version"))
}

func (s *Server) handleReleaseRemove(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := s.RemoveRelease(r.Context(), r.PathValue("version")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// RemoveRelease removes imported release v, its record and its files. A
// release still pinned by a version setting, the target of an open
// deployment or needed by an open run is a conflict naming what holds it.
func (s *Server) RemoveRelease(ctx context.Context, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.releases[v]; !ok {
		return notFound("release %s is not imported", v)
	}
	for k, val := range s.settings {
		if strings.HasPrefix(k, "version.") && val == v {
			return conflict("release %s is pinned by %s: set it to another version first", v, k)
		}
	}
	for _, d := range s.open {
		if d.Target == v {
			return conflict("release %s is the target of deployment %s (%s): wait for it to end or cancel its run", v, depID(d.ID), d.State)
		}
	}
	var runs []string
	open, err := s.st.OpenRunTargets(ctx)
	if err != nil {
		return err
	}
	for _, rt := range open {
		if rt.Target == v || contains(mapValues(rt.TargetFor), v) {
			runs = append(runs, runID(rt.ID))
		}
	}
	if len(runs) > 0 {
		return conflict("release %s is needed by run %s: wait for it to end or cancel it", v, strings.Join(runs, ", "))
	}
	err = s.change(ctx, func(wr *writer) error {
		if err := wr.tx.DeleteRelease(v); err != nil {
			return err
		}
		wr.then(func() { delete(s.releases, v) })
		return wr.event(event{ID: protocol.EvReleaseRemoved, Msg: "release " + v + " removed", Fields: map[string]string{"version": v}})
	})
	if err != nil {
		return err
	}
	if err := s.art.Remove(ctx, v); err != nil {
		s.log.Warn("remove release files: " + err.Error())
	}
	return nil
}

func contains(ss []string, v string) bool {
	for _, s := range ss {
		if s == v {
			return true
		}
	}
	return false
}
