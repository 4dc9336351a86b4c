// Package window decides when a rollout may act: maintenance windows
// ("Mon-Fri 01:00-05:00 Europe/Berlin", the hours in which a host may be
// upgraded) and start times ("--start-at 2026-12-04 01:00 Europe/Berlin").
//
// Windows are wall-clock times in a named zone, so a window keeps its local
// hours across daylight saving. The zone database is compiled in
// (time/tzdata) because molt servers run on hosts without one, such as
// air-gapped Windows machines. The syntax is described in docs/windows.md.
package window

import (
	"strings"
	"time"

	// Zones must resolve on hosts without a zone database; this adds about
	// 400 KB to a binary that imports the package.
	_ "time/tzdata"
)

// Window is a set of weekly spans in which something may happen. The zero
// Window has no spans and means "always open". Windows are values: copy and
// compare them with Equal, not ==.
type Window struct {
	spans []span
}

// span is one "days HH:MM-HH:MM zone" part of a window. A run of the span
// starts on each of its days at start and ends at end on the same day, or on
// the next day when end <= start (the run belongs to the day it starts).
type span struct {
	days  uint8 // bit i set: time.Weekday(i) is one of the span's days
	start int   // minutes after midnight, 0..1439
	end   int   // minutes after midnight, 1..1440, never equal to start
	loc   *time.Location
}

const day = 24 * 60 // minutes

// IsZero reports whether w has no spans, that is, is always open.
func (w Window) IsZero() bool { return len(w.spans) == 0 }

// Equal reports whether w and o have the same spans in the same order.
func (w Window) Equal(o Window) bool {
	if len(w.spans) != len(o.spans) {
		return false
	}
	for i, s := range w.spans {
		t := o.spans[i]
		if s.days != t.days || s.start != t.start || s.end != t.end || s.loc.String() != t.loc.String() {
			return false
		}
	}
	return true
}

// String returns the canonical form of w, which Parse accepts again: days as
// ranges ("Mon-Fri", "daily"), times as HH:MM, the zone always named, spans
// joined by "; ". The zero Window is "".
func (w Window) String() string {
	var b strings.Builder
	for i, s := range w.spans {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(daysString(s.days))
		b.WriteByte(' ')
		b.WriteString(clock(s.start))
		b.WriteByte('-')
		b.WriteString(clock(s.end))
		b.WriteByte(' ')
		b.WriteString(s.loc.String())
	}
	return b.String()
}

// MarshalText writes the canonical form, so a Window can sit in JSON
// settings as a string.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText parses text as Parse does.
func (w *Window) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*w = p
	return nil
}

// Contains reports whether t is inside one of w's spans. The zero Window
// contains every time.
func (w Window) Contains(t time.Time) bool {
	if w.IsZero() {
		return true
	}
	_, ok := w.closeOfRunAt(t)
	return ok
}

// NextOpen returns t when t is inside w, and otherwise the first instant
// after t at which one of w's spans opens, in t's location. It returns the
// zero Time only if no span opens within two weeks of t, which a window
// returned by Parse cannot do.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	var best time.Time
	for _, s := range w.spans {
		y, m, d := t.In(s.loc).Date()
		// A week covers every day of the span; the second week is for a
		// run that a daylight-saving gap swallowed whole.
		for k := -1; k <= 15; k++ {
			if !s.on(y, m, d+k) {
				continue
			}
			open, close := s.run(y, m, d+k)
			if open.After(t) && open.Before(close) {
				if best.IsZero() || open.Before(best) {
					best = open
				}
				break // later days open later
			}
		}
	}
	if best.IsZero() {
		return best
	}
	return best.In(t.Location())
}

// closeHorizon bounds NextClose: a window that stays open this long from
// any time is open all week, every week.
const closeHorizon = 8 * 24 * time.Hour

// NextClose returns when the window closes after t, in t's location: the end
// of the span containing t, or of the spans that follow on without a gap
// ("Sat-Sun 00:00-24:00" closes on Monday 00:00, not at Saturday's end). It
// returns the zero Time when t is outside w, and when w does not close
// within 8 days of t (the zero Window, "daily 00:00-24:00").
func (w Window) NextClose(t time.Time) time.Time {
	if w.IsZero() {
		return time.Time{}
	}
	c, ok := w.closeOfRunAt(t)
	if !ok {
		return time.Time{}
	}
	limit := t.Add(closeHorizon)
	for c.Before(limit) {
		// Each step moves c to a later run's end, so this ends.
		n, ok := w.closeOfRunAt(c)
		if !ok {
			return c.In(t.Location())
		}
		c = n
	}
	return time.Time{}
}

// closeOfRunAt returns the latest end among the runs of w containing t.
func (w Window) closeOfRunAt(t time.Time) (time.Time, bool) {
	var c time.Time
	found := false
	for _, s := range w.spans {
		y, m, d := t.In(s.loc).Date()
		// A run containing t started today or yesterday in the span's zone;
		// two days back is for zones that once skipped a whole day.
		for k := -2; k <= 0; k++ {
			if !s.on(y, m, d+k) {
				continue
			}
			open, close := s.run(y, m, d+k)
			if !t.Before(open) && t.Before(close) && (!found || close.After(c)) {
				c, found = close, true
			}
		}
	}
	return c, found
}

// on reports whether the span has a run starting on the given local date
// (y, m, d may be out of range; they are normalised as by time.Date).
func (s span) on(y int, m time.Month, d int) bool {
	wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
	return s.days&(1<<wd) != 0
}

// run returns the instants at which the span's run starting on the given
// local date opens and closes. Both may be equal when a daylight-saving
// gap swallows the run; the run is then empty.
func (s span) run(y int, m time.Month, d int) (open, close time.Time) {
	open = wall(y, m, d, s.start, s.loc)
	if s.end <= s.start {
		d++
	}
	return open, wall(y, m, d, s.end, s.loc)
}

// wall returns the first instant at which the clock in loc shows minute min
// of the given date or later (min may be 1440, the next midnight). That is
// the wall time itself on ordinary days, its first occurrence when the
// clock is turned back and it happens twice, and the end of the gap when
// the clock is turned forward over it. time.Date leaves both cases
// unspecified (and in practice picks differently east and west of UTC).
func wall(y int, m time.Month, d, min int, loc *time.Location) time.Time {
	w := time.Date(y, m, d, 0, min, 0, 0, time.UTC).Unix()
	if loc == time.UTC {
		return time.Unix(w, 0).In(loc)
	}
	// Every zone's offset is under a day, so two days before w the clock
	// shows less than w. Walk the zone's periods from there: within a
	// period the clock is instant+offset, rising, so the first period
	// whose clock reaches w holds the answer.
	u := w - 2*86400
	for range 16 {
		t := time.Unix(u, 0).In(loc)
		_, off := t.Zone()
		_, end := t.ZoneBounds()
		c := max(w-int64(off), u)
		if end.IsZero() || c < end.Unix() {
			return time.Unix(c, 0).In(loc)
		}
		u = end.Unix()
	}
	// Sixteen zone changes in four days: no real zone does that.
	return time.Date(y, m, d, 0, min, 0, 0, loc)
}
