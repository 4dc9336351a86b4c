package delta

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// chunk is the size of the buffers Apply reads and writes with.
const chunk = 64 << 10

// Header is what a patch declares about itself.
type Header struct {
	BaseSize, ResultSize int64
	// Ctrl, Diff and Extra are the compressed streams' sizes.
	Ctrl, Diff, Extra int64
}

// ReadHeader reads and checks a patch's header against the patch's size.
func ReadHeader(patch io.ReaderAt, patchSize int64) (Header, error) {
	var b [HeaderSize]byte
	if patchSize < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than its header", ErrCorrupt, patchSize)
	}
	if _, err := patch.ReadAt(b[:], 0); err != nil {
		return Header{}, fmt.Errorf("read patch header: %w", err)
	}
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("%w: no %s magic", ErrCorrupt, Magic)
	}
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	for _, off := range []int{8, 16} {
		if u(off) > MaxFileSize {
			return Header{}, fmt.Errorf("%w: declares a file of %d bytes, the limit is %d", ErrCorrupt, u(off), MaxFileSize)
		}
	}
	rest := uint64(patchSize - HeaderSize)
	if u(24) > rest || u(32) > rest || u(40) > rest || u(24)+u(32)+u(40) != rest {
		return Header{}, fmt.Errorf("%w: its streams do not add up to its %d bytes", ErrCorrupt, patchSize)
	}
	return Header{BaseSize: int64(u(8)), ResultSize: int64(u(16)), Ctrl: int64(u(24)), Diff: int64(u(32)), Extra: int64(u(40))}, nil
}

// Apply writes to out the result of patch applied to base and returns
// its size, which must be wantSize (the size the signed manifest names).
//
// Memory is bounded whatever the patch says: three inflaters (32 KiB
// window each), two 64 KiB buffers and bufio's, about 300 KiB; the base
// is read where the patch points and the result is written as it is
// made. Every size and position the patch declares is checked before it
// is used: the base size must be the base's, the result size wantSize,
// each record's bytes must fit in what remains of the result and each
// base range inside the base; the streams must end where the records
// do. A patch that passes all that can still give wrong bytes: callers
// check the result's SHA-256.
func Apply(base io.ReaderAt, baseSize int64, patch io.ReaderAt, patchSize int64, out io.Writer, wantSize int64) (int64, error) {
	h, err := ReadHeader(patch, patchSize)
	if err != nil {
		return 0, err
	}
	if h.BaseSize != baseSize {
		return 0, fmt.Errorf("%w: made from a base of %d bytes, this one has %d", ErrBaseMismatch, h.BaseSize, baseSize)
	}
	if h.ResultSize != wantSize {
		return 0, fmt.Errorf("%w: makes %d bytes, %d expected", ErrCorrupt, h.ResultSize, wantSize)
	}
	stream := func(off, n int64) io.ReadCloser {
		return flate.NewReader(bufio.NewReaderSize(io.NewSectionReader(patch, off, n), 16<<10))
	}
	ctrl := stream(HeaderSize, h.Ctrl)
	diff := stream(HeaderSize+h.Ctrl, h.Diff)
	extra := stream(HeaderSize+h.Ctrl+h.Diff, h.Extra)
	defer ctrl.Close()
	defer diff.Close()
	defer extra.Close()
	cr := bufio.NewReaderSize(ctrl, 4<<10)

	bbuf := make([]byte, chunk)
	obuf := make([]byte, chunk)
	var done, oldpos int64
	for done < h.ResultSize {
		add, err1 := binary.ReadUvarint(cr)
		cp, err2 := binary.ReadUvarint(cr)
		seek, err3 := binary.ReadVarint(cr)
		if err := errors.Join(err1, err2, err3); err != nil {
			return done, fmt.Errorf("%w: control stream: %v", ErrCorrupt, err)
		}
		left := uint64(h.ResultSize - done)
		if add > left || cp > left-add {
			return done, fmt.Errorf("%w: a record writes past the result's %d bytes", ErrCorrupt, h.ResultSize)
		}
		if add > uint64(baseSize-oldpos) {
			return done, fmt.Errorf("%w: a record reads past the base's %d bytes", ErrCorrupt, baseSize)
		}
		for n := int64(add); n > 0; {
			k := min(n, chunk)
			if _, err := io.ReadFull(diff, obuf[:k]); err != nil {
				return done, fmt.Errorf("%w: diff stream: %v", ErrCorrupt, err)
			}
			if _, err := base.ReadAt(bbuf[:k], oldpos); err != nil && !(errors.Is(err, io.EOF) && oldpos+k == baseSize) {
				return done, fmt.Errorf("read base: %w", err)
			}
			for i := range k {
				obuf[i] += bbuf[i]
			}
			if _, err := out.Write(obuf[:k]); err != nil {
				return done, err
			}
			n -= k
			oldpos += k
			done += k
		}
		for n := int64(cp); n > 0; {
			k := min(n, chunk)
			if _, err := io.ReadFull(extra, obuf[:k]); err != nil {
				return done, fmt.Errorf("%w: extra stream: %v", ErrCorrupt, err)
			}
			if _, err := out.Write(obuf[:k]); err != nil {
				return done, err
			}
			n -= k
			done += k
		}
		if seek < -oldpos || seek > baseSize-oldpos {
			return done, fmt.Errorf("%w: a record seeks outside the base", ErrCorrupt)
		}
		oldpos += seek
	}
	// Nothing may follow: a patch is one exact set of streams.
	for name, r := range map[string]io.Reader{"control": cr, "diff": diff, "extra": extra} {
		if n, err := r.Read(bbuf[:1]); n != 0 || !errors.Is(err, io.EOF) {
			return done, fmt.Errorf("%w: %s stream goes on past the result", ErrCorrupt, name)
		}
	}
	return done, nil
}
