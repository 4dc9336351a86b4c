// Package semver orders molt version strings: dot-separated numbers with an
// optional "-prerelease" and "+build" (ignored), as in 1.5.0, 1.5.0-rc.1.
// Non-numeric parts compare as text, so any valid version has an order.
package semver

import (
	"strconv"
	"strings"
)

// Compare returns -1, 0 or +1 as a is lower than, equal to or higher than b.
func Compare(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	a = strings.TrimPrefix(a, "v")
	b = strings.TrimPrefix(b, "v")
	ac, apre, aHasPre := strings.Cut(a, "-")
	bc, bpre, bHasPre := strings.Cut(b, "-")
	if c := compareDotted(ac, bc); c != 0 {
		return c
	}
	switch {
	case aHasPre && !bHasPre:
		return -1
	case !aHasPre && bHasPre:
		return 1
	}
	return compareDotted(apre, bpre)
}

// Less reports whether a < b.
func Less(a, b string) bool { return Compare(a, b) < 0 }

func compareDotted(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := comparePart(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func comparePart(x, y string) int {
	xn, xerr := strconv.ParseUint(x, 10, 64)
	yn, yerr := strconv.ParseUint(y, 10, 64)
	switch {
	case x == y:
		return 0
	case xerr == nil && yerr == nil:
		if xn < yn {
			return -1
		} else if xn > yn {
			return 1
		}
		return 0
	case x == "":
		return -1
	case y == "":
		return 1
	case xerr == nil: // numbers sort before text
		return -1
	case yerr == nil:
		return 1
	case x < y:
		return -1
	default:
		return 1
	}
}
