package delta

// suffixArray returns the suffix array of old as bsdiff 4's qsufsort
// makes it: len(old)+1 entries, the empty suffix first, a suffix that is
// a proper prefix of another before it. A text has one suffix array, so
// the patches are the same whichever algorithm sorts; this one is SA-IS
// (Nong, Zhang and Chan, "Two Efficient Algorithms for Linear Time
// Suffix Array Construction", 2011), linear where Larsson and Sadakane's
// doubling takes O(n log n) and most of a diff's time. It needs about 5
// bytes per byte of old besides old: the array and a type per byte (the
// reduced problem it recurses on fits in the array's free half).
func suffixArray(old []byte) []int32 {
	sa := make([]int32, len(old)+1)
	sa[0] = int32(len(old))
	sais(old, sa[1:], 256)
	return sa
}

// sais writes the suffix array of s, whose values are below k, into sa
// (len(s) entries). The end of s is a virtual sentinel smaller than any
// value: a suffix that is a prefix of another sorts first.
func sais[T byte | int32](s []T, sa []int32, k int) {
	n := len(s)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	// stype[i]: suffix i is smaller than suffix i+1 (S-type), else
	// L-type. The last one is L: the sentinel after it is smaller.
	stype := make([]bool, n)
	for i := n - 2; i >= 0; i-- {
		stype[i] = s[i] < s[i+1] || (s[i] == s[i+1] && stype[i+1])
	}
	// A leftmost S-type position (LMS): S-type after an L-type.
	lms := func(i int32) bool { return i > 0 && stype[i] && !stype[i-1] }
	bkt := make([]int32, k)

	// 1. Sort the LMS substrings: LMS positions at their buckets' ends,
	// then induced.
	for i := range sa {
		sa[i] = -1
	}
	bucketEnds(s, bkt)
	for i := n - 1; i >= 1; i-- {
		if lms(int32(i)) {
			c := s[i]
			bkt[c]--
			sa[bkt[c]] = int32(i)
		}
	}
	induce(s, sa, stype, bkt)

	// 2. Name the LMS substrings in their order (equal ones alike) and
	// sort the LMS suffixes by the suffix array of the names, recursively
	// when two are alike.
	n1 := 0
	for _, p := range sa {
		if lms(p) {
			sa[n1] = p
			n1++
		}
	}
	for i := n1; i < n; i++ {
		sa[i] = -1
	}
	names, prev := int32(0), int32(-1)
	for i := 0; i < n1; i++ {
		p := sa[i]
		if prev < 0 || !sameLMS(s, stype, lms, p, prev) {
			names++
			prev = p
		}
		// LMS positions are at least two apart: p/2 is a free slot of
		// its own in the upper half.
		sa[n1+int(p/2)] = names - 1
	}
	j := n - 1
	for i := n - 1; i >= n1; i-- {
		if sa[i] >= 0 {
			sa[j] = sa[i]
			j--
		}
	}
	s1, sa1 := sa[n-n1:], sa[:n1]
	if int(names) < n1 {
		sais(s1, sa1, int(names))
	} else {
		for i, c := range s1 {
			sa1[c] = int32(i)
		}
	}

	// 3. Induce the whole array from the sorted LMS suffixes.
	j = 0
	for i := 1; i < n; i++ {
		if lms(int32(i)) {
			s1[j] = int32(i)
			j++
		}
	}
	for i := range sa1 {
		sa1[i] = s1[sa1[i]]
	}
	for i := n1; i < n; i++ {
		sa[i] = -1
	}
	bucketEnds(s, bkt)
	for i := n1 - 1; i >= 0; i-- {
		p := sa[i]
		sa[i] = -1
		c := s[p]
		bkt[c]--
		sa[bkt[c]] = p
	}
	induce(s, sa, stype, bkt)
}

// sameLMS reports whether the LMS substrings at a and b (from one LMS
// position to the next, both included) are equal in values and types.
// One that runs into the sentinel equals no other.
func sameLMS[T byte | int32](s []T, stype []bool, lms func(int32) bool, a, b int32) bool {
	n := int32(len(s))
	for d := int32(0); ; d++ {
		if a+d == n || b+d == n || s[a+d] != s[b+d] || stype[a+d] != stype[b+d] {
			return false
		}
		if d > 0 && (lms(a+d) || lms(b+d)) {
			return true
		}
	}
}

// induce sorts the L-type suffixes from the S-type ones placed in sa
// (left to right into their buckets' heads), then the S-type ones from
// the L-type (right to left into their buckets' ends). bkt is scratch.
func induce[T byte | int32](s []T, sa []int32, stype []bool, bkt []int32) {
	n := len(s)
	bucketStarts(s, bkt)
	// The sentinel, first, induces the last suffix (L-type).
	c := s[n-1]
	sa[bkt[c]] = int32(n - 1)
	bkt[c]++
	for i := 0; i < n; i++ {
		if p := sa[i] - 1; p >= 0 && !stype[p] {
			c := s[p]
			sa[bkt[c]] = p
			bkt[c]++
		}
	}
	bucketEnds(s, bkt)
	for i := n - 1; i >= 0; i-- {
		if p := sa[i] - 1; p >= 0 && stype[p] {
			c := s[p]
			bkt[c]--
			sa[bkt[c]] = p
		}
	}
}

func bucketStarts[T byte | int32](s []T, bkt []int32) {
	clear(bkt)
	for _, c := range s {
		bkt[c]++
	}
	var sum int32
	for i, c := range bkt {
		bkt[i] = sum
		sum += c
	}
}

func bucketEnds[T byte | int32](s []T, bkt []int32) {
	clear(bkt)
	for _, c := range s {
		bkt[c]++
	}
	var sum int32
	for i, c := range bkt {
		sum += c
		bkt[i] = sum
	}
}
