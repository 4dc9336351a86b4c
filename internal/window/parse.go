package window

import (
	"fmt"
	"strings"
	"time"
)

// Limits on what Parse reads, so that a setting or a flag cannot make the
// server do unbounded work.
const (
	MaxLen   = 256 // bytes of a window string, and of its canonical form
	MaxSpans = 16
)

// example is shown in errors: a good window to copy from.
const example = `e.g. "Mon-Fri 01:00-05:00 Europe/Berlin"`

// dayNames are indexed by time.Weekday.
var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Parse reads a window as operators write it: spans separated by ";", each
// "DAYS HH:MM-HH:MM [ZONE]".
//
//	Mon-Fri 01:00-05:00 Europe/Berlin
//	Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin
//	Fri 22:00-04:00       (crosses midnight: ends Saturday 04:00)
//	daily 02:00-03:00 UTC
//
// DAYS are Mon..Sun or full names in any case, as lists and ranges
// ("Mon,Wed,Fri", "Sat-Sun", "Fri-Mon"), or "daily" / "*". An end earlier
// than the start crosses midnight; "24:00" is the end of the day. ZONE is an
// IANA name or UTC, the default. An empty string is the zero Window (always
// open). Errors are one line naming the wrong part.
func Parse(s string) (Window, error) {
	if len(s) > MaxLen {
		return Window{}, fmt.Errorf("window is too long: %d bytes, at most %d", len(s), MaxLen)
	}
	if strings.TrimSpace(s) == "" {
		return Window{}, nil
	}
	parts := strings.Split(s, ";")
	if len(parts) > MaxSpans {
		return Window{}, fmt.Errorf("window has %d spans, at most %d", len(parts), MaxSpans)
	}
	var w Window
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return Window{}, fmt.Errorf(`window %q: empty span (spans are separated by ";", e.g. "Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin")`, strings.TrimSpace(s))
		}
		sp, err := parseSpan(p)
		if err != nil {
			return Window{}, fmt.Errorf("window %q: %w", p, err)
		}
		w.spans = append(w.spans, sp)
	}
	// String must parse again, so its form is bounded too; only windows
	// written very tersely ("*", ";" without a space) grow past the limit.
	if c := w.String(); len(c) > MaxLen {
		return Window{}, fmt.Errorf("window is too long: %d bytes when written out in full, at most %d", len(c), MaxLen)
	}
	return w, nil
}

func parseSpan(p string) (span, error) {
	f := strings.Fields(p)
	// The days end where the time range begins (the first field with a
	// digit), so "Mon, Wed" and "Mon - Fri" read as written.
	i := 0
	for i < len(f) && !strings.ContainsAny(f[i], "0123456789") {
		i++
	}
	if i == len(f) {
		return span{}, fmt.Errorf("missing time range HH:MM-HH:MM (%s)", example)
	}
	if i == 0 {
		return span{}, fmt.Errorf(`missing days before %q (write "daily %s" for every day, %s)`, f[0], f[0], example)
	}
	days, err := parseDays(strings.Join(f[:i], ""))
	if err != nil {
		return span{}, err
	}
	// The time range likewise may be written "01:00 - 05:00".
	j := i + 1
	for j < len(f) && strings.Trim(f[j], "0123456789:-") == "" {
		j++
	}
	start, end, err := parseRange(strings.Join(f[i:j], ""))
	if err != nil {
		return span{}, err
	}
	loc := time.UTC
	switch rest := f[j:]; len(rest) {
	case 0:
	case 1:
		if loc, err = loadZone(rest[0]); err != nil {
			return span{}, err
		}
	default:
		return span{}, fmt.Errorf("unexpected %q after the time zone (%s)", rest[1], example)
	}
	return span{days: days, start: start, end: end, loc: loc}, nil
}

// parseDays reads "Mon-Fri", "Mon,Wed,Fri", "Fri-Mon", "daily" or "*".
func parseDays(s string) (uint8, error) {
	var mask uint8
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty day in %q (write days as Mon,Wed,Fri or Mon-Fri, %s)", s, example)
		}
		if item == "*" || strings.EqualFold(item, "daily") {
			mask = 0x7f
			continue
		}
		from, to, isRange := strings.Cut(item, "-")
		a, err := parseDay(from)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return 0, err
			}
		}
		// Walk forward from a to b, wrapping after Sunday: "Fri-Mon" is
		// Fri, Sat, Sun, Mon.
		for d := a; ; d = (d + 1) % 7 {
			mask |= 1 << d
			if d == b {
				break
			}
		}
	}
	return mask, nil
}

func parseDay(s string) (time.Weekday, error) {
	for d, n := range dayNames {
		full := time.Weekday(d).String()
		if strings.EqualFold(s, n) || strings.EqualFold(s, full) {
			return time.Weekday(d), nil
		}
	}
	return 0, fmt.Errorf("unknown day %q (days are Mon..Sun, %s)", s, example)
}

// parseRange reads "HH:MM-HH:MM" into minutes after midnight. An end of
// 00:00 is the next midnight, the same as 24:00.
func parseRange(s string) (start, end int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok || strings.Contains(b, "-") {
		return 0, 0, fmt.Errorf("bad time range %q (write HH:MM-HH:MM, %s)", s, example)
	}
	if start, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if start == day {
		return 0, 0, fmt.Errorf("bad start time %q (24:00 may only end a span; write 00:00, %s)", a, example)
	}
	if end, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	if end == 0 {
		end = day
	}
	if end == start {
		return 0, 0, fmt.Errorf(`empty time range %q (start equals end; for the whole day write "00:00-24:00")`, s)
	}
	return start, end, nil
}

// parseClock reads "HH:MM", 00:00 to 24:00.
func parseClock(s string) (int, error) {
	bad := fmt.Errorf("bad time %q (write HH:MM from 00:00 to 23:59, or 24:00 as an end, %s)", s, example)
	if len(s) != 5 || s[2] != ':' {
		return 0, bad
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, bad
	}
	return h*60 + m, nil
}

// loadZone resolves an IANA zone name; "UTC" in any case is UTC. The
// server's own zone ("Local") is refused: a window must mean the same on
// every host that reads it.
func loadZone(name string) (*time.Location, error) {
	if strings.EqualFold(name, "UTC") {
		return time.UTC, nil
	}
	if strings.EqualFold(name, "Local") {
		return nil, fmt.Errorf(`time zone "Local" is not allowed (hosts differ; name the zone, e.g. "Europe/Berlin" or "UTC")`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf(`unknown time zone %q (use an IANA name, case matters, e.g. "Europe/Berlin", "America/New_York" or "UTC")`, name)
	}
	return loc, nil
}

// clock writes minutes after midnight as HH:MM (1440 as 24:00).
func clock(m int) string {
	return fmt.Sprintf("%02d:%02d", m/60, m%60)
}

// daysString writes a day mask in its shortest form: "daily", runs of two
// or more days as ranges ("Mon-Fri", "Fri-Mon"), single days alone,
// starting from Monday.
func daysString(mask uint8) string {
	if mask == 0x7f {
		return "daily"
	}
	has := func(d int) bool { return mask&(1<<((d%7+7)%7)) != 0 }
	var runs []string
	// Weekdays in Mon..Sun order are 1..7 (7 = Sunday again, mod 7).
	for d := 1; d <= 7; d++ {
		if !has(d) || has(d-1) {
			continue // not the first day of a run
		}
		e := d
		for has(e + 1) {
			e++
		}
		if e == d {
			runs = append(runs, dayNames[d%7])
		} else {
			runs = append(runs, dayNames[d%7]+"-"+dayNames[e%7])
		}
	}
	return strings.Join(runs, ",")
}
