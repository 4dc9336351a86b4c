package window

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// startExamples is shown in ParseStart's errors.
const startExamples = `e.g. "2026-12-04T01:00:00+01:00", "2026-12-04 01:00 Europe/Berlin", "01:00 Europe/Berlin", "+2h30m" or "in 2h"`

// startGrace is how far in the past a start time may lie and still count
// as now: the time it takes to type a command.
const startGrace = time.Minute

// ParseStart reads a start time (molt upgrade --start-at) relative to now:
//
//	2026-12-04T01:00:00+01:00        RFC 3339
//	2026-12-04 01:00 [ZONE]          wall time in ZONE (default UTC)
//	01:00 [ZONE]                     the next 01:00 in ZONE (default UTC)
//	+2h30m, in 2h, in 1d12h          relative to now
//
// A wall time that does not exist or happens twice on a daylight-saving day
// resolves as windows do: the end of the gap, or the first occurrence. "HH:MM"
// is today's when that is no more than a minute ago, else tomorrow's.
// Times more than a minute before now, or more than a year after it, are
// refused.
func ParseStart(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		return time.Time{}, fmt.Errorf("start time is too long: %d bytes, at most %d", len(s), MaxLen)
	}
	t, err := parseStart(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("start time %q: %w", s, err)
	}
	if t.Before(now.Add(-startGrace)) {
		return time.Time{}, fmt.Errorf("start time %q is in the past: %s, now is %s", s, t.Format(time.RFC3339), now.In(t.Location()).Format(time.RFC3339))
	}
	if limit := now.AddDate(1, 0, 0); t.After(limit) {
		return time.Time{}, fmt.Errorf("start time %q is more than a year ahead: %s, at most %s", s, t.Format(time.RFC3339), limit.In(t.Location()).Format(time.RFC3339))
	}
	return t, nil
}

func parseStart(s string, now time.Time) (time.Time, error) {
	notATime := fmt.Errorf("not a time (%s)", startExamples)
	if s == "" {
		return time.Time{}, notATime
	}
	if rel, ok := strings.CutPrefix(s, "+"); ok {
		d, err := parseRelative(rel)
		return now.Add(d), err
	}
	if len(s) > 3 && strings.EqualFold(s[:3], "in ") {
		d, err := parseRelative(strings.TrimSpace(s[3:]))
		return now.Add(d), err
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	f := strings.Fields(s)
	if len(f) > 3 {
		return time.Time{}, notATime
	}
	if min, err := parseClock(f[0]); err == nil && min < day {
		// "HH:MM [ZONE]": the next such wall time.
		if len(f) > 2 {
			return time.Time{}, fmt.Errorf("unexpected %q after the time zone (%s)", f[2], startExamples)
		}
		loc, err := startZone(f[1:])
		if err != nil {
			return time.Time{}, err
		}
		y, m, d := now.In(loc).Date()
		t := wall(y, m, d, min, loc)
		if t.Before(now.Add(-startGrace)) {
			t = wall(y, m, d+1, min, loc)
		}
		return t, nil
	}
	date, err := time.Parse(time.DateOnly, f[0])
	if err != nil || len(f) < 2 {
		return time.Time{}, notATime
	}
	min, err := parseClock(f[1])
	if err != nil || min == day {
		return time.Time{}, fmt.Errorf("bad time of day %q (write HH:MM from 00:00 to 23:59, %s)", f[1], startExamples)
	}
	loc, err := startZone(f[2:])
	if err != nil {
		return time.Time{}, err
	}
	return wall(date.Year(), date.Month(), date.Day(), min, loc), nil
}

func startZone(f []string) (*time.Location, error) {
	if len(f) == 0 {
		return time.UTC, nil
	}
	return loadZone(f[0])
}

// parseRelative reads a Go duration ("2h30m", "90m") with an optional
// leading count of days ("1d", "1d12h").
func parseRelative(s string) (time.Duration, error) {
	bad := fmt.Errorf("bad duration %q (write it as +2h30m, in 90m or in 1d12h)", s)
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, bad
		}
		if n > 400 {
			return 0, errors.New("more than a year ahead")
		}
		d = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return d, nil
		}
	}
	r, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	if r < 0 {
		return 0, fmt.Errorf("negative duration %q (a relative start counts forward, e.g. +2h30m)", s)
	}
	if r > 400*24*time.Hour {
		return 0, errors.New("more than a year ahead")
	}
	return d + r, nil
}
