package platform

import "testing"

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, in  string
		state     string
		start     int64
		wantError bool
	}{
		{"plain", "42 (molt-agent) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 12345 0 0", "S", 12345, false},
		{"parens in name", "42 (a) (b) Z) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 777 0 0", "Z", 777, false},
		{"short", "42 (x) S 1 2 3", "", 0, true},
		{"no name", "42 x S", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, start, err := parseProcStat([]byte(tt.in))
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if state != tt.state || start != tt.start {
				t.Errorf("got %q %d, want %q %d", state, start, tt.state, tt.start)
			}
		})
	}
}
