//go:build !linux && !windows

package platform

import (
	"testing"
	"time"
)

func TestParseEtime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"00:05", 5 * time.Second, false},
		{"12:34", 12*time.Minute + 34*time.Second, false},
		{"01:02:03", time.Hour + 2*time.Minute + 3*time.Second, false},
		{"2-01:02:03", 49*time.Hour + 2*time.Minute + 3*time.Second, false},
		{"x", 0, true},
		{"1:2:3:4", 0, true},
	}
	for _, tt := range tests {
		got, err := parseEtime(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseEtime(%q) = %s, %v; want %s, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}
