package semver

import "testing"

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0.0", "1.0.1", -1},
		{"1.10.0", "1.9.0", 1},
		{"2.0", "2.0.0", -1},
		{"1.5.0-rc.1", "1.5.0", -1},
		{"1.5.0-rc.2", "1.5.0-rc.10", -1},
		{"1.5.0+build7", "1.5.0", 0},
		{"v1.2.0", "1.2.0", 0},
		{"1.0.0-alpha", "1.0.0-beta", -1},
	} {
		if got := Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Compare(tc.b, tc.a); got != -tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
