package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

func fleet(n int, f func(i int) Agent) []Agent {
	out := make([]Agent, n)
	for i := range out {
		out[i] = f(i)
		out[i].ID = fmt.Sprintf("a%03d", i)
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		c    protocol.RunControls
		want string // "" or part of the error
	}{
		{protocol.RunControls{}, ""},
		{protocol.RunControls{Canary: 3, Waves: []string{"5%", "25%", "100%"}}, ""},
		{protocol.RunControls{Waves: []string{"25%", "5%", "100%"}}, "not above the wave before"},
		{protocol.RunControls{Waves: []string{"5%", "50%"}}, "last wave must be 100%"},
		{protocol.RunControls{Waves: []string{"five"}}, "not a share"},
		{protocol.RunControls{Waves: []string{"100%"}, WaveLabel: []string{"ring=a"}}, "not both"},
		{protocol.RunControls{WaveLabel: []string{"ring"}}, "not key=value"},
		{protocol.RunControls{WaveLabel: []string{"ring=a", "ring=a"}}, "twice"},
		{protocol.RunControls{MaxConcurrentPercent: 101}, "max_concurrent_percent"},
		{protocol.RunControls{Ramp: 2}, "ramp needs rate_per_minute"},
		{protocol.RunControls{RatePerMinute: 10, Ramp: 0.5}, "ramp 0.5"},
		{protocol.RunControls{Window: "Mon-Fri 01:00-05:00 Europe/Berlin"}, ""},
		{protocol.RunControls{Window: "Mon-Fry 01:00-05:00"}, "Fry"},
		{protocol.RunControls{Canary: -1}, "canary -1"},
	} {
		err := Check(tc.c, 100)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one saying %q", tc.c, err, tc.want)
		}
	}
}

// TestCanariesCover: the canaries cover every platform, OS family and
// value of the cover labels, even when that takes more than asked for.
func TestCanariesCover(t *testing.T) {
	agents := fleet(100, func(i int) Agent {
		a := Agent{Platform: "linux/amd64", OSFamily: "debian", Labels: map[string]string{"role": "web"}}
		switch {
		case i == 97:
			a.OSFamily = "rhel" // one host of a family the others do not have
		case i == 98:
			a.Platform, a.OSFamily = "windows/amd64", "windows"
		case i == 99:
			a.Labels["role"] = "db"
		}
		return a
	})
	for _, tc := range []struct {
		n     int
		cover []string
		want  []int // must be canaries
		size  int
	}{
		{1, nil, []int{97, 98}, 3}, // rhel, windows and one of the debian hosts
		{5, nil, []int{97, 98}, 5},
		{1, []string{"role"}, []int{97, 98, 99}, 3},
	} {
		p := NewPlan(agents, protocol.RunControls{Canary: tc.n, CanaryCover: tc.cover})
		can := p.Waves[0].Members
		if p.Waves[0].Name != "canary" || len(can) != tc.size {
			t.Errorf("canary %d cover %v: wave 0 %q has %d agents, want %d", tc.n, tc.cover, p.Waves[0].Name, len(can), tc.size)
		}
		for _, i := range tc.want {
			if !p.Canary[i] {
				t.Errorf("canary %d cover %v: agent %d (%+v) is not a canary: %v", tc.n, tc.cover, i, agents[i], can)
			}
		}
		// Every OS family has a canary.
		fams := map[string]bool{}
		for _, i := range can {
			fams[agents[i].OSFamily] = true
		}
		if len(fams) != 3 {
			t.Errorf("canary %d: families covered %v, want debian, rhel and windows", tc.n, fams)
		}
	}
}

func TestWavesByShare(t *testing.T) {
	agents := fleet(100, func(int) Agent { return Agent{Platform: "linux/amd64", OSFamily: "debian"} })
	p := NewPlan(agents, protocol.RunControls{Canary: 3, Waves: []string{"5%", "25%", "100%"}})
	var got []string
	for _, w := range p.Waves {
		got = append(got, fmt.Sprintf("%s:%d", w.Name, len(w.Members)))
	}
	if strings.Join(got, " ") != "canary:3 5%:2 25%:20 100%:75" {
		t.Errorf("waves %v", got)
	}
	for i, w := range p.Wave {
		if p.Canary[i] != (w == 0) {
			t.Errorf("agent %d in wave %d, canary %v", i, w, p.Canary[i])
		}
	}
	// Shares round up: 1% of 10 is one agent, never none.
	p = NewPlan(agents[:10], protocol.RunControls{Waves: []string{"1%", "100%"}})
	if len(p.Waves) != 2 || len(p.Waves[0].Members) != 1 || len(p.Waves[1].Members) != 9 {
		t.Errorf("1%% of 10: %+v", p.Waves)
	}
}

func TestWavesByLabel(t *testing.T) {
	rings := []string{"early", "broad", "", "canary", "broad"}
	agents := fleet(5, func(i int) Agent {
		a := Agent{Platform: "linux/amd64", OSFamily: "debian", Labels: map[string]string{}}
		if rings[i] != "" {
			a.Labels["ring"] = rings[i]
		}
		return a
	})
	p := NewPlan(agents, protocol.RunControls{WaveLabel: []string{"ring=canary", "ring=early", "ring=broad"}})
	var got []string
	for _, w := range p.Waves {
		got = append(got, fmt.Sprintf("%s:%v", w.Name, w.Members))
	}
	if want := "ring=canary:[3] ring=early:[0] ring=broad:[1 4] rest:[2]"; strings.Join(got, " ") != want {
		t.Errorf("waves %v, want %s", got, want)
	}
}

func TestLimits(t *testing.T) {
	if got := MaxConcurrent(protocol.RunControls{MaxConcurrentPercent: 5}, 10, 1000); got != 50 {
		t.Errorf("5%% of 1000: %d", got)
	}
	if got := MaxConcurrent(protocol.RunControls{MaxConcurrentPercent: 5}, 10, 3); got != 1 {
		t.Errorf("5%% of 3: %d, want at least 1", got)
	}
	if got := MaxConcurrent(protocol.RunControls{}, 10, 1000); got != 10 {
		t.Errorf("count: %d", got)
	}
	for _, tc := range []struct {
		pct              float64
		min, fail, ended int
		halt             bool
	}{
		{2, 0, 1, 100, false},
		{2, 0, 2, 100, true},
		{50, 10, 3, 3, false}, // 100 % of 3, but fewer than 10 ended
		{50, 10, 5, 10, true},
		{0, 0, 100, 100, false},
	} {
		if got := FailureHalt(protocol.RunControls{MaxFailuresPercent: tc.pct, MinSample: tc.min}, tc.fail, tc.ended) != ""; got != tc.halt {
			t.Errorf("%g%% min %d: %d of %d: halt %v, want %v", tc.pct, tc.min, tc.fail, tc.ended, got, tc.halt)
		}
	}
}

func TestRateRamp(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c := protocol.RunControls{RatePerMinute: 20, Ramp: 2}
	for _, tc := range []struct {
		first      time.Time
		now        time.Time
		lastMinute int
		want       int
	}{
		{time.Time{}, t0, 0, 20},
		{t0, t0.Add(30 * time.Second), 20, 0},
		{t0, t0.Add(time.Minute), 5, 35}, // 40 a minute now
		{t0, t0.Add(3*time.Minute + time.Second), 0, 160},
	} {
		if got := StartsAllowed(c, tc.first, tc.now, tc.lastMinute); got != tc.want {
			t.Errorf("at %s with %d in the last minute: %d, want %d", tc.now.Sub(t0), tc.lastMinute, got, tc.want)
		}
	}
	if got := StartsAllowed(protocol.RunControls{}, t0, t0, 1000); got != Unlimited {
		t.Errorf("no rate: %d", got)
	}
}

func TestEarliestStartSpread(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c := protocol.RunControls{StartAt: t0.Add(time.Hour), SpreadSeconds: 3600}
	for i, want := range map[int]time.Duration{0: time.Hour, 1: time.Hour + 15*time.Minute, 3: time.Hour + 45*time.Minute} {
		if got := EarliestStart(c, t0, i, 4); !got.Equal(t0.Add(want)) {
			t.Errorf("deployment %d of 4: %s, want %s", i, got.Sub(t0), want)
		}
	}
	if got := EarliestStart(protocol.RunControls{}, t0, 5, 10); !got.Equal(t0) {
		t.Errorf("no schedule: %s", got)
	}
}

func TestWaveDone(t *testing.T) {
	S, F, P, R := protocol.StateSucceeded, protocol.StateFailed, protocol.StatePending, protocol.StateRestarting
	for _, tc := range []struct {
		name   string
		counts map[string]int
		size   int
		share  int
		done   bool
	}{
		{"all succeeded", map[string]int{S: 10}, 10, 0, true},
		{"one dead host at 90%", map[string]int{S: 9, P: 1}, 10, 0, true},
		{"two dead hosts", map[string]int{S: 8, P: 2}, 10, 0, false},
		{"one still restarting", map[string]int{S: 9, R: 1}, 10, 0, false},
		{"all ended, some failed", map[string]int{S: 7, F: 3}, 10, 0, true},
		{"share 100", map[string]int{S: 9, P: 1}, 10, 100, false},
	} {
		if got := WaveDone(protocol.RunControls{WaveDonePercent: tc.share}, tc.counts, tc.size); got != tc.done {
			t.Errorf("%s: done %v, want %v", tc.name, got, tc.done)
		}
	}
}
