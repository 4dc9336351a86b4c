package delta

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
)

func roundTrip(t testing.TB, base, result []byte) []byte {
	t.Helper()
	var p bytes.Buffer
	if err := Diff(base, result, &p); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	var out bytes.Buffer
	n, err := Apply(bytes.NewReader(base), int64(len(base)), bytes.NewReader(p.Bytes()), int64(p.Len()), &out, int64(len(result)))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if n != int64(len(result)) || !bytes.Equal(out.Bytes(), result) {
		t.Fatalf("Apply made %d bytes that differ from the result's %d", n, len(result))
	}
	return p.Bytes()
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	big := randBytes(r, 200<<10)
	edited := bytes.Clone(big)
	copy(edited[1000:], "a one-line change")
	moved := append(append(bytes.Clone(big[100<<10:]), []byte("inserted")...), big[:100<<10]...)
	for _, tc := range []struct {
		name         string
		base, result []byte
		maxPatch     int
	}{
		{"both empty", nil, nil, HeaderSize + 20},
		{"empty base", nil, []byte("hello"), 100},
		{"empty result", []byte("hello"), nil, 100},
		{"identical", big, big, 1 << 10},
		{"one edit", big, edited, 1 << 10},
		{"moved halves", big, moved, 1 << 10},
		{"unrelated", big[:1000], randBytes(r, 3000), 4000},
		{"repetitive", bytes.Repeat([]byte{0}, 100<<10), append(bytes.Repeat([]byte{0}, 50<<10), bytes.Repeat([]byte{1}, 60<<10)...), 1 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := roundTrip(t, tc.base, tc.result)
			if len(p) > tc.maxPatch {
				t.Errorf("patch is %d bytes, want at most %d", len(p), tc.maxPatch)
			}
		})
	}
}

// TestRealBinary patches this test binary into a copy with a few bytes
// changed and a block moved, as a rebuilt Go binary looks.
func TestRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("suffix-sorts a binary of several MB")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	result := bytes.Clone(base)
	for i := 4096; i < len(result); i += 1 << 20 {
		result[i]++
	}
	result = append(result[:len(result)/2], append([]byte("a new function"), result[len(result)/2:]...)...)
	p := roundTrip(t, base, result)
	if len(p) > len(base)/100 {
		t.Errorf("patch is %d bytes for a %d-byte binary, want under 1%%", len(p), len(base))
	}
}

// TestApplyRefuses: every way a patch can lie about sizes and positions is
// refused before it writes past the expected size or reads past the base.
func TestApplyRefuses(t *testing.T) {
	base := []byte("the quick brown fox jumps over the lazy dog, again and again")
	result := []byte("the quick red fox jumps over the lazy cat, again and again and again")
	var good bytes.Buffer
	if err := Diff(base, result, &good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		patch    func() []byte
		baseSize int64
		want     int64
		err      error
	}{
		{"short", func() []byte { return good.Bytes()[:20] }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"bad magic", func() []byte { p := bytes.Clone(good.Bytes()); p[0] = 'X'; return p }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"truncated", func() []byte { return good.Bytes()[:good.Len()-1] }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"trailing byte", func() []byte { return append(bytes.Clone(good.Bytes()), 0) }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"other base", good.Bytes, int64(len(base)) - 1, int64(len(result)), ErrBaseMismatch},
		{"other result size", good.Bytes, int64(len(base)), int64(len(result)) + 1, ErrCorrupt},
		{"huge result", func() []byte {
			p := bytes.Clone(good.Bytes())
			p[16+7] = 0x7f
			return p
		}, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"record past the result", func() []byte { return handMade(base, len(result), [][3]int64{{int64(len(base)), 1000, 0}}) }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"record past the base", func() []byte { return handMade(base, len(result), [][3]int64{{int64(len(base)) + 1, 0, 0}}) }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"seek before the base", func() []byte { return handMade(base, len(result), [][3]int64{{0, 1, -1}}) }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"seek past the base", func() []byte { return handMade(base, len(result), [][3]int64{{0, 1, int64(len(base)) + 1}}) }, int64(len(base)), int64(len(result)), ErrCorrupt},
		{"streams short", func() []byte { return handMade(base, len(result), [][3]int64{{1, 1, 0}}) }, int64(len(base)), int64(len(result)), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.patch()
			var out bytes.Buffer
			_, err := Apply(bytes.NewReader(base), tc.baseSize, bytes.NewReader(p), int64(len(p)), &out, tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Apply = %v, want %v", err, tc.err)
			}
			if int64(out.Len()) > tc.want {
				t.Errorf("wrote %d bytes, more than the %d expected", out.Len(), tc.want)
			}
		})
	}
}

// handMade writes a patch with the given records and streams of zeros
// just long enough for what the records claim, up to 64 bytes each.
func handMade(base []byte, resultSize int, recs [][3]int64) []byte {
	var c bytes.Buffer
	for _, r := range recs {
		c.Write(appendRec(nil, r[0], r[1], r[2]))
	}
	ctrl, zeros := deflated(c.Bytes()), deflated(make([]byte, 64))
	return header(int64(len(base)), int64(resultSize), ctrl, zeros, zeros)
}

// TestApplyMemory: applying a patch to an 8 MiB file allocates a bounded
// amount, not anything proportional to the file.
func TestApplyMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randBytes(r, 8<<20)
	result := bytes.Clone(base)
	for i := 0; i < len(result); i += 1 << 20 {
		result[i] ^= 0x55
	}
	var p bytes.Buffer
	if err := Diff(base, result, &p); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := Apply(bytes.NewReader(base), int64(len(base)), bytes.NewReader(p.Bytes()), int64(p.Len()), discard{}, int64(len(result)))
	runtime.ReadMemStats(&after)
	if err != nil || n != int64(len(result)) {
		t.Fatalf("Apply = %d, %v", n, err)
	}
	t.Logf("Apply allocated %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Apply allocated %d bytes for a %d-byte result, want under 1 MiB", got, len(result))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func FuzzApply(f *testing.F) {
	base := []byte("the quick brown fox jumps over the lazy dog")
	var good bytes.Buffer
	if err := Diff(base, []byte("the quick red fox jumps over the lazy cat"), &good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes(), int64(41))
	f.Fuzz(func(t *testing.T, p []byte, want int64) {
		if want < 0 || want > 1<<20 {
			return
		}
		var out bytes.Buffer
		n, err := Apply(bytes.NewReader(base), int64(len(base)), bytes.NewReader(p), int64(len(p)), &out, want)
		if int64(out.Len()) > want || n != int64(out.Len()) {
			t.Fatalf("wrote %d bytes (said %d), want at most %d", out.Len(), n, want)
		}
		if err == nil && n != want {
			t.Fatalf("no error but %d bytes of %d", n, want)
		}
	})
}

// TestDiffLongRuns: a file with megabytes of one byte value (a sparse
// data file, a zero-filled section) diffs in about linear time. bsdiff
// 4's search took one-byte matches there, and minutes for 4 MiB.
func TestDiffLongRuns(t *testing.T) {
	base := make([]byte, 4<<20)
	result := bytes.Clone(base)
	result[len(result)/2] = 1
	start := time.Now()
	p := roundTrip(t, base, result)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("4 MiB of zeros took %s to diff", d)
	}
	if len(p) > 16<<10 {
		t.Errorf("patch of %d bytes for a one-byte change", len(p))
	}
}
