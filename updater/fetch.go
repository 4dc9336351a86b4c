package updater

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/updater/pack"
)

const (
	copyBuffer    = 256 << 10
	progressEvery = 256 << 10
)

func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

// permanentError is a failure another attempt cannot fix (a local write
// error, a refusal); withRetry returns it at once.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func retryable(err error) bool {
	var p permanentError
	return !IsRefusal(err) && !errors.Is(err, errHTTPStatus) && !errors.As(err, &p)
}

// withRetry runs fn until it succeeds, fails for good, or has failed
// retry.Attempts times in a row without progress. An attempt that made
// progress resets the count, so a connection that keeps dropping still
// completes, yet the total is bounded too.
func (u *Updater) withRetry(ctx context.Context, what string, fn func(context.Context) (progress bool, err error)) error {
	failures, total := 0, 0
	for {
		progress, err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if !retryable(err) {
			var p permanentError
			if errors.As(err, &p) {
				return p.err
			}
			return err
		}
		total++
		if progress {
			failures = 0
		} else {
			failures++
		}
		if failures >= u.retry.Attempts || total >= 8*u.retry.Attempts {
			return fmt.Errorf("giving up after %d attempts: %w", total, err)
		}
		d := u.backoff(failures)
		var ra retryAfterError
		if errors.As(err, &ra) {
			d = max(d, min(ra.after, u.retry.Max))
		}
		u.log.Info("retrying", zap.String("what", what), zap.Int("attempt", total), zap.Duration("after", d), zap.Error(err))
		if err := u.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// backoff is base*2^failures capped at Max, with "equal jitter": half
// fixed, half random, so agents that failed together spread out.
func (u *Updater) backoff(failures int) time.Duration {
	d := u.retry.Base
	for i := 0; i < failures && d < u.retry.Max; i++ {
		d *= 2
	}
	d = min(d, u.retry.Max)
	half := d / 2
	return half + rand.N(half+1)
}

// fetch brings one file into its part file in cache/<V>/, verified, and
// queues on syncs its fsync and the rename to its cache file.
func (u *Updater) fetch(ctx context.Context, log *zap.Logger, st *UpgradeState, src source, it item, syncs *errgroup.Group) error {
	f := st.Files[it.key]
	if f.Verified {
		if fi, err := os.Stat(u.cachePath(st.Version, it.key)); err == nil && fi.Size() == it.a.Size {
			return nil
		}
		f.Verified = false
	}
	if err := os.MkdirAll(u.cacheDir(st.Version), 0o755); err != nil {
		return permanent(err)
	}
	var err error
	switch s := src.(type) {
	case *packSource:
		err = u.copyFromPack(st, it, s)
	case *httpSource:
		if !u.patched(ctx, log, st, src, it) {
			err = u.download(ctx, log, st, it, src.location(it.a))
		}
	default:
		err = fmt.Errorf("unknown source %T", src)
	}
	if err != nil {
		return err
	}
	key := it.key
	part, done := u.partPath(st.Version, key), u.cachePath(st.Version, key)
	syncs.Go(func() error {
		if err := syncFile(part); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		// No directory sync: a lost rename leaves a part file that the
		// next attempt hashes and completes.
		return os.Rename(part, done)
	})
	return nil
}

// syncFile flushes a file's data to disk (fsync applies to the file, not
// to the descriptor that wrote it).
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// progressWriter reports progress as bytes pass.
type progressWriter struct {
	u          *Updater
	p          Progress
	lastReport int64
}

func (w *progressWriter) add(n int64) {
	w.p.Done += n
	if w.p.Done-w.lastReport >= progressEvery || w.p.Done == w.p.Total {
		w.lastReport = w.p.Done
		w.u.progress(w.p)
	}
}

func (u *Updater) copyFromPack(st *UpgradeState, it item, s *packSource) error {
	a := it.a
	rc, err := s.r.OpenArtifact(a)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(u.partPath(st.Version, it.key), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	pw := &progressWriter{u: u, p: Progress{Order: st.Order, Version: st.Version, File: it.key, Total: a.Size}}
	if a.Size == 0 {
		u.progress(pw.p)
	}
	buf := make([]byte, bufferFor(a.Size))
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return err
			}
			pw.add(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return out.Close()
}

// bufferFor is the copy buffer for a file of size bytes: a small file of
// a workload's tree needs no 256 KiB (one byte more than the file, so
// that an overlong answer is seen).
func bufferFor(size int64) int {
	return int(max(min(size+1, copyBuffer), 4<<10))
}

// download fetches url into the part file, resuming from the bytes
// already there.
func (u *Updater) download(ctx context.Context, log *zap.Logger, st *UpgradeState, it item, url string) error {
	a := it.a
	d := &dl{u: u, log: log, st: st, f: st.Files[it.key], a: a, url: url,
		pw: &progressWriter{u: u, p: Progress{Order: st.Order, Version: st.Version, File: it.key, Total: a.Size}}}
	fh, err := os.OpenFile(u.partPath(st.Version, it.key), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer fh.Close()
	d.fh = fh
	// Write back to disk while the download goes on, so that the final
	// fsync finds little left to do.
	d.flush = startFlusher(fh)
	defer d.flush.stop()
	if err := d.rehash(); err != nil {
		return err
	}
	for {
		if d.have == a.Size {
			sum := hex.EncodeToString(d.h.Sum(nil))
			if sum == a.SHA256 {
				break
			}
			if !d.whole {
				// The bytes came from more than one response (or an
				// earlier process): one of them may have been another
				// file. Start over once from a clean slate.
				log.Warn("resumed download does not match; starting over", zap.String("file", it.key))
				if err := d.reset(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("%s: %w: manifest says %s, download has %s", url, pack.ErrHashMismatch, a.SHA256, sum)
		}
		if err := u.withRetry(ctx, "download "+it.key, d.attempt); err != nil {
			return err
		}
	}
	d.flush.stop()
	d.pw.p.Done = a.Size
	u.progress(d.pw.p)
	return fh.Close()
}

// dl is one artifact's download in progress.
type dl struct {
	u   *Updater
	log *zap.Logger
	st  *UpgradeState
	f   *FileState
	a   pack.Artifact
	url string
	fh  *os.File
	h   hash.Hash
	pw  *progressWriter
	// have is the number of bytes on disk and in h.
	have int64
	// whole is true when those bytes came from one response that
	// started at byte 0.
	whole     bool
	flush     *flusher
	unflushed int64
}

// saveValidatorAbove is the size from which a file's validator is written
// to upgrade.json as soon as it arrives.
const saveValidatorAbove = 1 << 20

// flushEvery is how much is written between early write-backs.
const flushEvery = 4 << 20

// flusher runs fsync in its own goroutine when poked; pokes while one
// runs are merged. Its errors are ignored: the final fsync reports.
type flusher struct {
	kick chan struct{}
	done chan struct{}
	once sync.Once
}

func startFlusher(f *os.File) *flusher {
	fl := &flusher{kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(fl.done)
		for range fl.kick {
			_ = f.Sync()
		}
	}()
	return fl
}

func (fl *flusher) poke() {
	select {
	case fl.kick <- struct{}{}:
	default:
	}
}

// stop waits for a running fsync; it may be called more than once.
func (fl *flusher) stop() {
	fl.once.Do(func() { close(fl.kick) })
	<-fl.done
}

// rehash hashes the bytes already on disk: they are resumed from, never
// trusted, so the final SHA-256 covers every byte.
func (d *dl) rehash() error {
	d.h = sha256.New()
	fi, err := d.fh.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size > d.a.Size {
		size = 0
	}
	n, err := io.Copy(d.h, io.NewSectionReader(d.fh, 0, size))
	if err != nil {
		return err
	}
	if err := d.fh.Truncate(n); err != nil {
		return permanent(err)
	}
	d.have, d.whole = n, n == 0
	if n == 0 {
		d.f.ETag, d.f.LastModified = "", ""
	}
	d.f.Done = n
	d.pw.p.Done, d.pw.lastReport = n, n
	return nil
}

func (d *dl) reset() error {
	if err := d.fh.Truncate(0); err != nil {
		return permanent(err)
	}
	d.h.Reset()
	d.have, d.whole = 0, true
	d.f.ETag, d.f.LastModified, d.f.Done = "", "", 0
	d.pw.p.Done, d.pw.lastReport = 0, 0
	return nil
}

// attempt is one HTTP request; it reports whether bytes arrived.
func (d *dl) attempt(ctx context.Context) (progress bool, err error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	timer := time.AfterFunc(d.u.stall, func() { stalled.Store(true); cancel() })
	defer timer.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodGet, d.url, nil)
	if err != nil {
		return false, permanent(err)
	}
	// Byte offsets must mean the file's bytes, not a compressed stream's.
	req.Header.Set("Accept-Encoding", "identity")
	if d.have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.have, 10)+"-")
		// If-Range: the server sends the remainder only if the file is
		// still the one the first bytes came from, else all of it (200).
		if d.f.ETag != "" {
			req.Header.Set("If-Range", d.f.ETag)
		} else if d.f.LastModified != "" {
			req.Header.Set("If-Range", d.f.LastModified)
		}
	}
	resp, err := d.u.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if total >= 0 && total != d.a.Size {
			return false, fmt.Errorf("%s: %w: the server's file is %d bytes, the manifest says %d", d.url, pack.ErrSizeMismatch, total, d.a.Size)
		}
		if !ok || start != d.have {
			if err := d.reset(); err != nil {
				return false, err
			}
			return false, fmt.Errorf("%s: asked for bytes from %d, got range %q", d.url, d.have, resp.Header.Get("Content-Range"))
		}
		if d.have > 0 {
			d.whole = false
		}
	case http.StatusOK:
		if d.have > 0 {
			d.log.Info("server sent the whole file; starting over", zap.String("url", d.url), zap.Int64("had", d.have))
			if err := d.reset(); err != nil {
				return false, err
			}
		}
		if resp.ContentLength >= 0 && resp.ContentLength != d.a.Size {
			return false, fmt.Errorf("%s: %w: the server's file is %d bytes, the manifest says %d", d.url, pack.ErrSizeMismatch, resp.ContentLength, d.a.Size)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// The file there is shorter than what we have: not ours. Start
		// over, counted as a failed attempt so a server that answers
		// nothing else is not asked forever.
		if err := d.reset(); err != nil {
			return false, err
		}
		return false, fmt.Errorf("%s: %s for bytes from %d; starting over", d.url, resp.Status, d.have)
	default:
		return false, statusError(resp)
	}
	d.remember(resp)

	// Hashing runs beside receiving and writing: on two cores the
	// download then costs little more than the slower of the two.
	body := &stallReader{r: resp.Body, timer: timer, stall: d.u.stall}
	hs := startHasher(d.h, bufferFor(d.a.Size))
	defer hs.wait()
	for {
		buf := hs.buffer()
		// One byte more than the manifest allows, so an endless or
		// oversize response is noticed and cut off.
		want := min(int64(len(buf)), d.a.Size-d.have+1)
		// Whole buffers: one write per 256 KiB rather than one per
		// network read.
		n, rerr := fill(body, buf[:want])
		if n == 0 {
			hs.recycle(buf)
		}
		if n > 0 {
			if d.have+int64(n) > d.a.Size {
				hs.recycle(buf)
				return progress, fmt.Errorf("%s: %w: the response is longer than the %d bytes the manifest names", d.url, pack.ErrSizeMismatch, d.a.Size)
			}
			if _, err := d.fh.WriteAt(buf[:n], d.have); err != nil {
				hs.recycle(buf)
				return progress, permanent(err)
			}
			hs.write(buf[:n])
			d.have += int64(n)
			d.f.Done = d.have
			d.pw.add(int64(n))
			faults.Point("agent/mid-download")
			if d.unflushed += int64(n); d.unflushed >= flushEvery {
				d.unflushed = 0
				d.flush.poke()
			}
			progress = true
		}
		if rerr == io.EOF {
			if d.have < d.a.Size {
				return progress, fmt.Errorf("%s: %w: the file ends at %d bytes, the manifest says %d", d.url, pack.ErrSizeMismatch, d.have, d.a.Size)
			}
			return progress, nil
		}
		if rerr != nil {
			if stalled.Load() && ctx.Err() == nil {
				return progress, fmt.Errorf("%s: no data for %s", d.url, d.u.stall)
			}
			return progress, rerr
		}
		if d.have == d.a.Size {
			// Look for an extra byte: a response longer than the
			// manifest's size is refused, not silently truncated.
			continue
		}
	}
}

// fill reads until p is full or the reader fails, returning the reader's
// own error (unlike io.ReadFull, a cut connection stays distinguishable
// from a clean end).
func fill(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var k int
		k, err = r.Read(p[n:])
		n += k
	}
	return n, err
}

// stallReader restarts the stall timer whenever bytes arrive.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	stall time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.stall)
	}
	return n, err
}

// hasher feeds a hash from its own goroutine through a small pool of
// buffers, so memory stays bounded (hasherBuffers * copyBuffer).
type hasher struct {
	h    hash.Hash
	in   chan []byte
	free chan []byte
	done chan struct{}
}

const hasherBuffers = 4

func startHasher(h hash.Hash, size int) *hasher {
	hs := &hasher{h: h, in: make(chan []byte, hasherBuffers), free: make(chan []byte, hasherBuffers), done: make(chan struct{})}
	for range hasherBuffers {
		hs.free <- make([]byte, size)
	}
	go func() {
		defer close(hs.done)
		for b := range hs.in {
			hs.h.Write(b)
			hs.free <- b[:cap(b)]
		}
	}()
	return hs
}

func (hs *hasher) buffer() []byte   { return <-hs.free }
func (hs *hasher) recycle(b []byte) { hs.free <- b[:cap(b)] }
func (hs *hasher) write(b []byte)   { hs.in <- b }

// wait returns once every written buffer is in the hash.
func (hs *hasher) wait() {
	close(hs.in)
	<-hs.done
}

// remember keeps the response's validator for If-Range on a later
// resume. Weak ETags cannot be used with If-Range.
func (d *dl) remember(resp *http.Response) {
	etag := resp.Header.Get("ETag")
	if strings.HasPrefix(etag, "W/") {
		etag = ""
	}
	lm := resp.Header.Get("Last-Modified")
	if etag == d.f.ETag && lm == d.f.LastModified {
		return
	}
	d.f.ETag, d.f.LastModified = etag, lm
	// Each write of upgrade.json names every file: for a tree of
	// thousands of small files, one per file would cost more than the
	// files. A small file's part is resumed without If-Range (its hash
	// still decides) or fetched again.
	if d.a.Size < saveValidatorAbove {
		return
	}
	if err := d.u.saveState(d.st); err != nil {
		d.log.Warn("cannot record download validator", zap.Error(err))
	}
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*",
// returned as -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, -1, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, -1, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, -1, false
		}
		total = t
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, total, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, total, false
	}
	return start, total, true
}

// verifyFile reports whether path holds exactly a's bytes.
func verifyFile(path string, a pack.Artifact) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() != a.Size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, bufferFor(a.Size))); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == a.SHA256, nil
}
