package window

import (
	"testing"
	"time"
)

// at parses an RFC 3339 time; "" is the zero Time.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type instantCase struct {
	window   string
	t        string // RFC 3339
	contains bool
	open     string // NextOpen
	close    string // NextClose, "" for the zero Time
}

func checkInstants(t *testing.T, cases []instantCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.window+" at "+tc.t, func(t *testing.T) {
			w, err := Parse(tc.window)
			if err != nil {
				t.Fatal(err)
			}
			now := at(t, tc.t)
			if got := w.Contains(now); got != tc.contains {
				t.Errorf("Contains = %v, want %v", got, tc.contains)
			}
			if got, want := w.NextOpen(now), at(t, tc.open); !got.Equal(want) {
				t.Errorf("NextOpen = %s, want %s", got.Format(time.RFC3339), want.Format(time.RFC3339))
			}
			if got, want := w.NextClose(now), at(t, tc.close); !got.Equal(want) {
				t.Errorf("NextClose = %s, want %s", got.Format(time.RFC3339), want.Format(time.RFC3339))
			}
		})
	}
}

// The week of 2026-11-30 (Monday) to 2026-12-06 (Sunday); Berlin is at
// +01:00 throughout.
func TestWindowTimes(t *testing.T) {
	checkInstants(t, []instantCase{
		// Weekdays, inside, at the edges, outside.
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-01T02:00:00+01:00", true, "2026-12-01T02:00:00+01:00", "2026-12-01T05:00:00+01:00"},
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-01T01:00:00+01:00", true, "2026-12-01T01:00:00+01:00", "2026-12-01T05:00:00+01:00"},
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-01T05:00:00+01:00", false, "2026-12-02T01:00:00+01:00", ""},
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-01T00:59:59+01:00", false, "2026-12-01T01:00:00+01:00", ""},
		// The answer comes in t's location, whatever the window's zone.
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-11-30T23:00:00Z", false, "2026-12-01T00:00:00Z", ""},
		// Friday after the span: the next opening is Monday.
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-04T06:00:00+01:00", false, "2026-12-07T01:00:00+01:00", ""},
		{"Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-05T12:00:00+01:00", false, "2026-12-07T01:00:00+01:00", ""},

		// Crossing midnight: Friday's span ends Saturday 04:00 and
		// belongs to Friday, so Saturday 23:00 is outside.
		{"Fri 22:00-04:00", "2026-12-04T21:59:00Z", false, "2026-12-04T22:00:00Z", ""},
		{"Fri 22:00-04:00", "2026-12-04T23:30:00Z", true, "2026-12-04T23:30:00Z", "2026-12-05T04:00:00Z"},
		{"Fri 22:00-04:00", "2026-12-05T03:59:00Z", true, "2026-12-05T03:59:00Z", "2026-12-05T04:00:00Z"},
		{"Fri 22:00-04:00", "2026-12-05T04:00:00Z", false, "2026-12-11T22:00:00Z", ""},
		{"Fri 22:00-04:00", "2026-12-05T23:00:00Z", false, "2026-12-11T22:00:00Z", ""},
		{"Fri 22:00-04:00", "2026-12-04T02:00:00Z", false, "2026-12-04T22:00:00Z", ""},
		{"Fri 22:00-24:00", "2026-12-04T23:59:59Z", true, "2026-12-04T23:59:59Z", "2026-12-05T00:00:00Z"},

		// Week wrap: Sunday night into Monday, and Fri-Mon.
		{"Sun 23:00-02:00", "2026-12-07T01:00:00Z", true, "2026-12-07T01:00:00Z", "2026-12-07T02:00:00Z"},
		{"Sun 23:00-02:00", "2026-12-07T02:00:00Z", false, "2026-12-13T23:00:00Z", ""},
		{"Fri-Mon 10:00-11:00", "2026-12-07T10:30:00Z", true, "2026-12-07T10:30:00Z", "2026-12-07T11:00:00Z"},
		{"Fri-Mon 10:00-11:00", "2026-12-01T10:30:00Z", false, "2026-12-04T10:00:00Z", ""},
		{"Fri-Mon 10:00-11:00", "2026-12-07T11:00:00Z", false, "2026-12-11T10:00:00Z", ""},

		// Adjacent days merge: the weekend closes on Monday.
		{"Sat-Sun 00:00-24:00", "2026-12-05T10:00:00Z", true, "2026-12-05T10:00:00Z", "2026-12-07T00:00:00Z"},
		{"Sat-Sun 00:00-24:00", "2026-12-04T10:00:00Z", false, "2026-12-05T00:00:00Z", ""},
		{"daily 22:00-06:00", "2026-12-03T23:00:00Z", true, "2026-12-03T23:00:00Z", "2026-12-04T06:00:00Z"},
		{"daily 12:00-12:01", "2026-12-03T12:01:00Z", false, "2026-12-04T12:00:00Z", ""},

		// Several spans in several zones.
		{"Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-02T00:30:00Z", true, "2026-12-02T00:30:00Z", "2026-12-02T04:00:00Z"},
		{"Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-04T12:00:00Z", false, "2026-12-05T00:00:00Z", ""},
		// Monday 00:00 UTC the weekend ends, and Berlin's Monday span
		// (00:00-04:00 UTC) has already begun: one closing, at 04:00.
		{"Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin", "2026-12-06T12:00:00Z", true, "2026-12-06T12:00:00Z", "2026-12-07T04:00:00Z"},
		{"Mon 09:00-10:00 America/New_York; Mon 09:00-10:00 Asia/Tokyo", "2026-12-06T12:00:00Z", false, "2026-12-07T00:00:00Z", ""},
		{"Mon 09:00-10:00 America/New_York; Mon 09:00-10:00 Asia/Tokyo", "2026-12-07T01:00:00Z", false, "2026-12-07T14:00:00Z", ""},
		// Overlapping spans: the later end wins.
		{"Mon 01:00-03:00; Mon 02:00-05:00", "2026-11-30T01:30:00Z", true, "2026-11-30T01:30:00Z", "2026-11-30T05:00:00Z"},

		// Open all the time: NextClose has nothing to give.
		{"daily 00:00-24:00", "2026-12-03T12:00:00Z", true, "2026-12-03T12:00:00Z", ""},
	})
}

func TestZeroWindow(t *testing.T) {
	var w Window
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if !w.IsZero() || !w.Contains(now) || !w.NextOpen(now).Equal(now) || !w.NextClose(now).IsZero() {
		t.Errorf("zero Window: IsZero %v, Contains %v, NextOpen %v, NextClose %v; want always open",
			w.IsZero(), w.Contains(now), w.NextOpen(now), w.NextClose(now))
	}
	if w.String() != "" {
		t.Errorf("zero Window String = %q", w.String())
	}
}
