package delta

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
)

// Diff writes a patch that turns base into result.
func Diff(base, result []byte, w io.Writer) error {
	if len(base) > MaxDiffInput || len(result) > MaxFileSize {
		return fmt.Errorf("%w: base %d bytes (at most %d), result %d bytes (at most %d)", ErrTooLarge, len(base), MaxDiffInput, len(result), MaxFileSize)
	}
	var ctrl, db, eb bytes.Buffer
	cw, _ := flate.NewWriter(&ctrl, flate.BestCompression)
	dw, _ := flate.NewWriter(&db, flate.BestCompression)
	ew, _ := flate.NewWriter(&eb, flate.BestCompression)
	var rec []byte
	emit := func(add, cp, seek int) error {
		rec = binary.AppendUvarint(rec[:0], uint64(add))
		rec = binary.AppendUvarint(rec, uint64(cp))
		rec = binary.AppendVarint(rec, int64(seek))
		_, err := cw.Write(rec)
		return err
	}
	if err := scan(base, result, emit, dw, ew); err != nil {
		return err
	}
	for _, c := range []*flate.Writer{cw, dw, ew} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	var h [HeaderSize]byte
	copy(h[:], Magic)
	binary.LittleEndian.PutUint64(h[8:], uint64(len(base)))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(result)))
	binary.LittleEndian.PutUint64(h[24:], uint64(ctrl.Len()))
	binary.LittleEndian.PutUint64(h[32:], uint64(db.Len()))
	binary.LittleEndian.PutUint64(h[40:], uint64(eb.Len()))
	for _, b := range [][]byte{h[:], ctrl.Bytes(), db.Bytes(), eb.Bytes()} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// scan is bsdiff 4's main loop: it finds approximate matches of result
// in base through the suffix array and emits, per match, the bytewise
// difference over the extended match (mostly zeros for code that only
// moved) and the bytes that match nothing.
func scan(old, nw []byte, emit func(add, cp, seek int) error, dw, ew io.Writer) error {
	I := suffixArray(old)
	oldsize, newsize := len(old), len(nw)
	var scanPos, length, pos, lastscan, lastpos, lastoffset int
	buf := make([]byte, 0, 64<<10)
	for scanPos < newsize {
		oldscore := 0
		scanPos += length
		for scsc := scanPos; scanPos < newsize; scanPos++ {
			pos, length = search(I, old, nw[scanPos:], 0, oldsize)
			for ; scsc < scanPos+length; scsc++ {
				if scsc+lastoffset < oldsize && old[scsc+lastoffset] == nw[scsc] {
					oldscore++
				}
			}
			if (length == oldscore && length != 0) || length > oldscore+8 {
				break
			}
			if scanPos+lastoffset < oldsize && old[scanPos+lastoffset] == nw[scanPos] {
				oldscore--
			}
		}
		if length == oldscore && scanPos != newsize {
			continue
		}
		s, sf, lenf := 0, 0, 0
		for i := 0; lastscan+i < scanPos && lastpos+i < oldsize; {
			if old[lastpos+i] == nw[lastscan+i] {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		lenb := 0
		if scanPos < newsize {
			s, sb := 0, 0
			for i := 1; scanPos >= lastscan+i && pos >= i; i++ {
				if old[pos-i] == nw[scanPos-i] {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		if lastscan+lenf > scanPos-lenb {
			overlap := (lastscan + lenf) - (scanPos - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if nw[lastscan+lenf-overlap+i] == old[lastpos+lenf-overlap+i] {
					s++
				}
				if nw[scanPos-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		buf = buf[:0]
		for i := 0; i < lenf; i++ {
			buf = append(buf, nw[lastscan+i]-old[lastpos+i])
			if len(buf) == cap(buf) {
				if _, err := dw.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		if _, err := dw.Write(buf); err != nil {
			return err
		}
		extra := (scanPos - lenb) - (lastscan + lenf)
		if _, err := ew.Write(nw[lastscan+lenf : lastscan+lenf+extra]); err != nil {
			return err
		}
		if err := emit(lenf, extra, (pos-lenb)-(lastpos+lenf)); err != nil {
			return err
		}
		lastscan, lastpos, lastoffset = scanPos-lenb, pos-lenb, pos-scanPos
	}
	return nil
}

// search finds the suffix of old in I[st..en] with the longest common
// prefix with nw: its position and the prefix's length. A suffix that is
// a proper prefix of nw sorts before it (bsdiff 4 sends the search the
// other way, towards shorter suffixes: in a long run of one byte value
// every search then finds a match of one byte, and diffing a file with a
// few MB of zeros took minutes instead of milliseconds).
func search(I []int32, old, nw []byte, st, en int) (pos, n int) {
	for en-st >= 2 {
		x := st + (en-st)/2
		p := int(I[x])
		m := min(len(old)-p, len(nw))
		if c := bytes.Compare(old[p:p+m], nw[:m]); c < 0 || (c == 0 && m < len(nw)) {
			st = x
		} else {
			en = x
		}
	}
	x, y := matchLen(old[I[st]:], nw), matchLen(old[I[en]:], nw)
	if x > y {
		return int(I[st]), x
	}
	return int(I[en]), y
}

func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
