package window

import (
	"testing"
	"time"
)

// The scheduler asks these for every waiting deployment on every pass.
func BenchmarkWindow(b *testing.B) {
	w, err := Parse("Sat-Sun 00:00-24:00; Mon-Fri 01:00-05:00 Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC) // outside
	b.Run("Contains", func(b *testing.B) {
		for b.Loop() {
			w.Contains(now)
		}
	})
	b.Run("NextOpen", func(b *testing.B) {
		for b.Loop() {
			w.NextOpen(now)
		}
	})
	inside := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	b.Run("NextClose", func(b *testing.B) {
		for b.Loop() {
			w.NextClose(inside)
		}
	})
}
