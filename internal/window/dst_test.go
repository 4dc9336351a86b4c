package window

import (
	"testing"
	"time"
)

// Europe/Berlin, 2026-03-29: at 01:00Z the clock jumps 02:00 CET -> 03:00
// CEST (02:00-03:00 does not exist). 2026-10-25: at 01:00Z it goes back
// 03:00 CEST -> 02:00 CET (02:00-03:00 happens twice).
func TestDSTBerlin(t *testing.T) {
	checkInstants(t, []instantCase{
		// A span starting in the gap opens when the gap ends.
		{"Sun 02:00-04:00 Europe/Berlin", "2026-03-29T00:30:00Z", false, "2026-03-29T01:00:00Z", ""},
		{"Sun 02:00-04:00 Europe/Berlin", "2026-03-29T01:30:00Z", true, "2026-03-29T01:30:00Z", "2026-03-29T02:00:00Z"},
		{"Sun 02:30-03:30 Europe/Berlin", "2026-03-29T00:59:00Z", false, "2026-03-29T01:00:00Z", ""},
		// A span wholly inside the gap does not happen that day.
		{"Sun 02:15-02:45 Europe/Berlin", "2026-03-28T12:00:00Z", false, "2026-04-05T00:15:00Z", ""},
		{"Sun 02:15-02:45 Europe/Berlin", "2026-03-29T01:00:00Z", false, "2026-04-05T00:15:00Z", ""},
		// A span ending in the gap ends when the gap ends.
		{"Sat 23:00-02:30 Europe/Berlin", "2026-03-29T00:30:00Z", true, "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
		// The wall-clock hours hold: 01:00-05:00 is three hours that night.
		{"daily 01:00-05:00 Europe/Berlin", "2026-03-29T00:30:00Z", true, "2026-03-29T00:30:00Z", "2026-03-29T03:00:00Z"},
		{"daily 01:00-05:00 Europe/Berlin", "2026-03-30T02:00:00Z", true, "2026-03-30T02:00:00Z", "2026-03-30T03:00:00Z"},
		// Spans meeting in the gap still meet: the window never closes.
		{"daily 00:00-02:30 Europe/Berlin; daily 02:30-24:00 Europe/Berlin", "2026-03-29T00:59:00Z", true, "2026-03-29T00:59:00Z", ""},

		// A time that happens twice means its first occurrence.
		{"Sun 02:00-03:00 Europe/Berlin", "2026-10-24T23:00:00Z", false, "2026-10-25T00:00:00Z", ""},
		{"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T00:30:00Z", true, "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"},
		{"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T01:30:00Z", true, "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"},
		// So a span ending in the repeated hour ends on its first pass.
		{"Sun 01:00-02:30 Europe/Berlin", "2026-10-25T00:15:00Z", true, "2026-10-25T00:15:00Z", "2026-10-25T00:30:00Z"},
		{"Sun 01:00-02:30 Europe/Berlin", "2026-10-25T01:15:00Z", false, "2026-11-01T00:00:00Z", ""},
		{"Sun 02:30-04:00 Europe/Berlin", "2026-10-25T01:15:00Z", true, "2026-10-25T01:15:00Z", "2026-10-25T03:00:00Z"},
		// A whole day is 25 hours long that Sunday and 23 in March.
		{"Sun 00:00-24:00 Europe/Berlin", "2026-10-24T22:00:00Z", true, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"},
		{"Sun 00:00-24:00 Europe/Berlin", "2026-03-28T23:00:00Z", true, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"},
	})
}

// America/New_York, 2026-03-08: at 07:00Z 02:00 EST -> 03:00 EDT.
// 2026-11-01: at 06:00Z 02:00 EDT -> 01:00 EST.
func TestDSTNewYork(t *testing.T) {
	checkInstants(t, []instantCase{
		{"Sun 02:30-03:30 America/New_York", "2026-03-08T06:00:00Z", false, "2026-03-08T07:00:00Z", ""},
		{"Sun 02:30-03:30 America/New_York", "2026-03-08T07:10:00Z", true, "2026-03-08T07:10:00Z", "2026-03-08T07:30:00Z"},
		{"Mon-Fri 01:00-05:00 America/New_York", "2026-03-09T06:00:00Z", true, "2026-03-09T06:00:00Z", "2026-03-09T09:00:00Z"},
		{"Mon-Fri 01:00-05:00 America/New_York", "2026-03-06T06:00:00Z", true, "2026-03-06T06:00:00Z", "2026-03-06T10:00:00Z"},

		{"Sun 01:30-02:00 America/New_York", "2026-11-01T05:00:00Z", false, "2026-11-01T05:30:00Z", ""},
		{"Sun 01:30-02:00 America/New_York", "2026-11-01T06:45:00Z", true, "2026-11-01T06:45:00Z", "2026-11-01T07:00:00Z"},
		{"Sat 22:00-01:30 America/New_York", "2026-11-01T05:45:00Z", false, "2026-11-08T03:00:00Z", ""},
		{"Sat 22:00-01:30 America/New_York", "2026-11-01T05:15:00Z", true, "2026-11-01T05:15:00Z", "2026-11-01T05:30:00Z"},
	})
}

// wall is the rule itself; time.Date leaves both cases unspecified.
func TestWall(t *testing.T) {
	zone := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	for _, tc := range []struct {
		zone    string
		y       int
		m       time.Month
		d, h, i int
		want    string
	}{
		{"UTC", 2026, 12, 3, 1, 0, "2026-12-03T01:00:00Z"},
		{"UTC", 2026, 12, 3, 24, 0, "2026-12-04T00:00:00Z"},
		{"Europe/Berlin", 2026, 12, 3, 1, 0, "2026-12-03T00:00:00Z"},
		{"Europe/Berlin", 2026, 3, 29, 2, 30, "2026-03-29T01:00:00Z"},  // gap
		{"Europe/Berlin", 2026, 10, 25, 2, 30, "2026-10-25T00:30:00Z"}, // twice
		{"Europe/Berlin", 2026, 10, 25, 3, 0, "2026-10-25T02:00:00Z"},
		{"America/New_York", 2026, 3, 8, 2, 30, "2026-03-08T07:00:00Z"},
		{"America/New_York", 2026, 11, 1, 1, 30, "2026-11-01T05:30:00Z"},
		// Lord Howe moves its clock by half an hour.
		{"Australia/Lord_Howe", 2026, 4, 5, 1, 45, "2026-04-04T14:45:00Z"},
		// Samoa skipped 2011-12-30 entirely (-10 -> +14).
		{"Pacific/Apia", 2011, 12, 30, 12, 0, "2011-12-30T10:00:00Z"},
		{"Pacific/Apia", 2011, 12, 29, 23, 0, "2011-12-30T09:00:00Z"},
		{"Pacific/Apia", 2011, 12, 31, 1, 0, "2011-12-30T11:00:00Z"},
	} {
		got := wall(tc.y, tc.m, tc.d, tc.h*60+tc.i, zone(tc.zone))
		if want := at(t, tc.want); !got.Equal(want) {
			t.Errorf("wall(%d-%02d-%02d %02d:%02d %s) = %s, want %s", tc.y, tc.m, tc.d, tc.h, tc.i, tc.zone,
				got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}
