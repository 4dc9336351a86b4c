// Package delta makes and applies binary patches between two versions of
// a file: bsdiff's algorithm (Colin Percival, "Naive differences of
// executable code", 2003) in a format of its own that applies in constant
// memory.
//
// A patch is a 48-byte header and three deflate streams:
//
//	"MOLTBSD1"                     magic
//	base size, result size         uint64 little-endian each
//	ctrl, diff, extra lengths      uint64 little-endian each: the compressed streams' sizes
//	ctrl stream                    records of three varints: add, copy (unsigned), seek (signed)
//	diff stream                    add bytes per record, added bytewise to the base's
//	extra stream                   copy bytes per record, taken as they are
//
// Applying one record writes add bytes (diff + base at the base position,
// which then moves by add), then copy bytes of extra, then moves the base
// position by seek. The result is written in order, so it streams to a
// file; the base is read where a record points (io.ReaderAt), never held.
package delta

import (
	"errors"
)

// Magic begins every patch.
const Magic = "MOLTBSD1"

// HeaderSize is the fixed part of a patch before its streams.
const HeaderSize = 48

// MaxFileSize bounds the base and the result a patch may declare: the
// largest file a pack carries (pack.MaxArtifactSize).
const MaxFileSize = 1 << 30

// MaxDiffInput is the largest base Diff takes: its suffix sort costs 5
// bytes per byte of the base, on the release engineer's machine.
const MaxDiffInput = 512 << 20

var (
	// ErrCorrupt: the patch is not one this package wrote, or declares
	// sizes or positions outside its base and result.
	ErrCorrupt = errors.New("corrupt patch")
	// ErrBaseMismatch: the patch was made from a base of another size.
	ErrBaseMismatch = errors.New("patch does not apply to this base")
	// ErrTooLarge: an input is larger than Diff or Apply takes.
	ErrTooLarge = errors.New("file too large for a patch")
)
