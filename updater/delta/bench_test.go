package delta

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// benchBinary is this test binary and a copy changed as a rebuilt Go
// binary is (a few bytes here and there, a block moved): what a pack's
// patches are made from.
func benchBinary(b *testing.B) (base, result []byte) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	base, err = os.ReadFile(exe)
	if err != nil {
		b.Fatal(err)
	}
	result = bytes.Clone(base)
	for i := 4096; i < len(result); i += 1 << 20 {
		result[i]++
	}
	result = append(result[:len(result)/2], append([]byte("a new function"), result[len(result)/2:]...)...)
	return base, result
}

// BenchmarkDiff diffs a binary of several MB:
//
//	go test -run '^$' -bench . ./updater/delta/
func BenchmarkDiff(b *testing.B) {
	base, result := benchBinary(b)
	b.SetBytes(int64(len(base)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Diff(base, result, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSuffixArray is the suffix sort alone, most of Diff's time.
func BenchmarkSuffixArray(b *testing.B) {
	base, _ := benchBinary(b)
	b.SetBytes(int64(len(base)))
	b.ReportAllocs()
	for b.Loop() {
		suffixArray(base)
	}
}
