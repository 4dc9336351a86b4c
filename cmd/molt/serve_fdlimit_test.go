package main

import (
	"strings"
	"testing"
)

// TestFDCheckMessage: molt serve states its descriptor limit and the agents
// it can hold at start, and warns when more are enrolled than that.
func TestFDCheckMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    fdCheck
		warn bool
		want []string
	}{
		{"roomy", fdCheck{before: 1024, soft: 1 << 20, hard: 1 << 20, enrolled: 5000}, false,
			[]string{"limit 1048576 (hard 1048576, raised from 1024)", "holds about 1048476 agents at once (5000 enrolled)", "LimitNOFILE"}},
		{"not raised", fdCheck{before: 20000, soft: 20000, hard: 20000, enrolled: 0}, false,
			[]string{"limit 20000 (hard 20000):", "about 19900 agents"}},
		{"too many enrolled", fdCheck{before: 1024, soft: 20000, hard: 20000, enrolled: 25000}, true,
			[]string{"warning:", "holds about 19900 agents at once, but 25000 are enrolled", "check-ins will fail", "LimitNOFILE="}},
		{"tiny limit", fdCheck{before: 64, soft: 64, hard: 64, enrolled: 1}, true,
			[]string{"holds about 0 agents"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, warn := tc.c.message()
			if warn != tc.warn {
				t.Errorf("warning = %v, want %v: %s", warn, tc.warn, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
		})
	}
}
