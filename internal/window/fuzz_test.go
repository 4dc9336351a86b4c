package window

import (
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that the canonical form of a
// window parses back to the same window, and that the window's times agree
// with each other. Run it longer with
//
//	go test ./internal/window/ -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Mon-Fri 01:00-05:00 Europe/Berlin",
		"Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin",
		"Fri 22:00-04:00",
		"Fri-Mon 23:30-00:30 America/New_York",
		"daily 02:00-03:00 UTC",
		"* 00:00-00:00",
		"mon,WED,friday 12:00-12:01 Asia/Kolkata",
		"Sun 02:15-02:45 Europe/Berlin",
		"Mon - Fri 01:00 - 05:00 Australia/Lord_Howe",
		"Mon 01:00-02:00 Etc/GMT+5",
		"Mon-Fry 01:00-05:00",
		"Mon 24:00-01:00",
		";;",
		"",
	} {
		f.Add(s)
	}
	times := []time.Time{
		time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC),
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC),
		time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := Parse(s)
		if err != nil {
			return
		}
		c := w.String()
		again, err := Parse(c)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, c, err)
		}
		if !again.Equal(w) {
			t.Fatalf("Parse(%q) = %q, which parses to %q", s, c, again)
		}
		if again.String() != c {
			t.Fatalf("canonical form %q is not stable: %q", c, again.String())
		}
		for _, now := range times {
			if o := w.NextOpen(now); o.IsZero() || o.Before(now) || !w.Contains(o) {
				t.Fatalf("%q: NextOpen(%s) = %s, not an open time at or after it", c, now, o)
			}
			if cl := w.NextClose(now); !cl.IsZero() && (!cl.After(now) || w.Contains(cl)) {
				t.Fatalf("%q: NextClose(%s) = %s, not a closing time after it", c, now, cl)
			}
		}
	})
}

// FuzzParseStart checks that ParseStart never panics and that what it
// accepts lies between a minute ago and a year ahead.
func FuzzParseStart(f *testing.F) {
	for _, s := range []string{
		"2026-12-04T01:00:00+01:00",
		"2026-12-04 01:00 Europe/Berlin",
		"2027-03-28 02:30 Europe/Berlin",
		"01:00 America/New_York",
		"+2h30m",
		"in 1d12h",
		"+366d",
		"in -2h",
		"",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 3, 6, 31, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseStart(s, now)
		if err != nil {
			return
		}
		if got.Before(now.Add(-startGrace)) || got.After(now.AddDate(1, 0, 0)) {
			t.Fatalf("ParseStart(%q) = %s, outside a minute ago .. a year ahead", s, got)
		}
	})
}
