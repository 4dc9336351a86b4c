package delta

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"
)

// naiveSuffixArray sorts the suffixes by comparing them: the definition.
func naiveSuffixArray(b []byte) []int32 {
	sa := make([]int32, len(b)+1)
	for i := range sa {
		sa[i] = int32(i)
	}
	sort.Slice(sa, func(i, j int) bool { return bytes.Compare(b[sa[i]:], b[sa[j]:]) < 0 })
	return sa
}

// TestSuffixArray: suffixArray is the suffix array (as sorting the
// suffixes gives it) and the same as bsdiff 4's qsufsort made, so that
// patches stay byte for byte what they were: on small texts of every
// kind (few values, runs, periods: the recursion's cases) and on a real
// binary.
func TestSuffixArray(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var texts [][]byte
	texts = append(texts, nil, []byte{0}, []byte{255}, []byte("a"), []byte("aa"), []byte("ab"), []byte("ba"),
		[]byte("banana"), []byte("mississippi"), []byte("abracadabra"), bytes.Repeat([]byte("ab"), 50),
		bytes.Repeat([]byte{0}, 300), bytes.Repeat([]byte("abcabd"), 40), []byte("zyxwvutsrqponmlkjihgfedcba"))
	for n := 2; n < 200; n += 7 {
		for _, k := range []int{2, 3, 4, 256} {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.IntN(k))
			}
			texts = append(texts, b)
		}
	}
	// A Fibonacci word: names collide at every level of the recursion.
	fa, fb := []byte("a"), []byte("ab")
	for len(fb) < 5000 {
		fa, fb = fb, append(slices.Clone(fb), fa...)
	}
	texts = append(texts, fb)
	for _, b := range texts {
		got := suffixArray(b)
		if want := naiveSuffixArray(b); !slices.Equal(got, want) {
			t.Fatalf("suffixArray(%q) = %v, want %v", b, got, want)
		}
		if want := qsufsort(b); !slices.Equal(got, want) {
			t.Fatalf("suffixArray(%q) = %v, qsufsort %v", b, got, want)
		}
	}

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(r.IntN(4)) // long repeats: deep recursion
	}
	if testing.Short() {
		big = big[:64<<10]
	} else if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil {
			texts = append(texts, b)
		}
	}
	for _, b := range [][]byte{big, texts[len(texts)-1]} {
		if got, want := suffixArray(b), qsufsort(b); !slices.Equal(got, want) {
			t.Fatalf("suffixArray of %d bytes differs from qsufsort's", len(b))
		}
	}
}

// FuzzSuffixArray: the linear-time sort agrees with the naive one on any
// input (short inputs with few distinct bytes make the recursion deep).
func FuzzSuffixArray(f *testing.F) {
	for _, s := range []string{"", "a", "aaaa", "banana", "mississippi", "abababab\x00\x00\xff", "cabbage cabbage"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			b = b[:4096]
		}
		if got, want := suffixArray(b), naiveSuffixArray(b); !slices.Equal(got, want) {
			t.Fatalf("suffixArray(%q) = %v, want %v", b, got, want)
		}
	})
}
