package window

import (
	"strings"
	"testing"
	"time"
)

func TestParseStart(t *testing.T) {
	// A Thursday; Berlin is at +01:00, New York at -05:00.
	now := at(t, "2026-12-03T06:31:00Z")
	for _, tc := range []struct{ in, want string }{
		{"2026-12-04T01:00:00+01:00", "2026-12-04T00:00:00Z"},
		{"2026-12-04T00:00:00Z", "2026-12-04T00:00:00Z"},
		{"2026-12-03T06:30:30Z", "2026-12-03T06:30:30Z"}, // a few seconds ago is now
		{"2026-12-04 01:00 Europe/Berlin", "2026-12-04T00:00:00Z"},
		{"2026-12-04 01:00", "2026-12-04T01:00:00Z"},
		{"2026-12-04 01:00 utc", "2026-12-04T01:00:00Z"},
		{"  2026-12-04   01:00   America/New_York ", "2026-12-04T06:00:00Z"},
		// Daylight saving as in windows: the end of the gap, the first
		// of two.
		{"2027-03-28 02:30 Europe/Berlin", "2027-03-28T01:00:00Z"},
		{"2027-10-31 02:30 Europe/Berlin", "2027-10-31T00:30:00Z"},
		// HH:MM is the next such time; up to a minute ago is today's.
		{"07:00", "2026-12-03T07:00:00Z"},
		{"06:30", "2026-12-03T06:30:00Z"},
		{"06:29", "2026-12-04T06:29:00Z"},
		{"00:00", "2026-12-04T00:00:00Z"},
		{"08:00 Europe/Berlin", "2026-12-03T07:00:00Z"},
		{"07:00 Europe/Berlin", "2026-12-04T06:00:00Z"},
		{"01:00 America/New_York", "2026-12-04T06:00:00Z"},
		{"+2h30m", "2026-12-03T09:01:00Z"},
		{"+0s", "2026-12-03T06:31:00Z"},
		{"in 2h", "2026-12-03T08:31:00Z"},
		{"IN 90m", "2026-12-03T08:01:00Z"},
		{"in 1d12h", "2026-12-04T18:31:00Z"},
		{"+7d", "2026-12-10T06:31:00Z"},
		{"+365d", "2027-12-03T06:31:00Z"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseStart(tc.in, now)
			if err != nil {
				t.Fatalf("ParseStart(%q): %v", tc.in, err)
			}
			if want := at(t, tc.want); !got.Equal(want) {
				t.Errorf("ParseStart(%q) = %s, want %s", tc.in, got.Format(time.RFC3339), tc.want)
			}
		})
	}
}

func TestParseStartErrors(t *testing.T) {
	now := at(t, "2026-12-03T06:31:00Z")
	const eg = `e.g. "2026-12-04T01:00:00+01:00", "2026-12-04 01:00 Europe/Berlin", "01:00 Europe/Berlin", "+2h30m" or "in 2h"`
	for _, tc := range []struct{ in, want string }{
		{"", `start time "": not a time (` + eg + `)`},
		{"tomorrow", `start time "tomorrow": not a time (` + eg + `)`},
		{"2026-12-04T01:00:00", `start time "2026-12-04T01:00:00": not a time (` + eg + `)`},
		{"2026-12-04", `start time "2026-12-04": not a time (` + eg + `)`},
		{"2026-12-04 25:00", `start time "2026-12-04 25:00": bad time of day "25:00" (write HH:MM from 00:00 to 23:59, ` + eg + `)`},
		{"2026-12-04 24:00", `start time "2026-12-04 24:00": bad time of day "24:00" (write HH:MM from 00:00 to 23:59, ` + eg + `)`},
		{"2026-12-04 01:00 Mars/Olympus", `start time "2026-12-04 01:00 Mars/Olympus": unknown time zone "Mars/Olympus" (use an IANA name, case matters, e.g. "Europe/Berlin", "America/New_York" or "UTC")`},
		{"01:00 Local", `start time "01:00 Local": time zone "Local" is not allowed (hosts differ; name the zone, e.g. "Europe/Berlin" or "UTC")`},
		{"01:00 UTC now", `start time "01:00 UTC now": unexpected "now" after the time zone (` + eg + `)`},
		{"+2x", `start time "+2x": bad duration "2x" (write it as +2h30m, in 90m or in 1d12h)`},
		{"in 1dx", `start time "in 1dx": bad duration "1dx" (write it as +2h30m, in 90m or in 1d12h)`},
		{"in -2h", `start time "in -2h": negative duration "-2h" (a relative start counts forward, e.g. +2h30m)`},
		{"+500d", `start time "+500d": more than a year ahead`},
		{"+99999h", `start time "+99999h": more than a year ahead`},
		{"+366d", `start time "+366d" is more than a year ahead: 2027-12-04T06:31:00Z, at most 2027-12-03T06:31:00Z`},
		{"2026-12-03T06:29:59Z", `start time "2026-12-03T06:29:59Z" is in the past: 2026-12-03T06:29:59Z, now is 2026-12-03T06:31:00Z`},
		{"2026-12-02 01:00 Europe/Berlin", `start time "2026-12-02 01:00 Europe/Berlin" is in the past: 2026-12-02T01:00:00+01:00, now is 2026-12-03T07:31:00+01:00`},
		{"2027-12-04 01:00", `start time "2027-12-04 01:00" is more than a year ahead: 2027-12-04T01:00:00Z, at most 2027-12-03T06:31:00Z`},
		{strings.Repeat("1", 257), `start time is too long: 257 bytes, at most 256`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseStart(tc.in, now)
			if err == nil {
				t.Fatalf("ParseStart(%q) = %s, want error %q", tc.in, got, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("ParseStart(%q) error\n got: %s\nwant: %s", tc.in, err, tc.want)
			}
		})
	}
}
