// Package rollout decides how a run rolls out, as pure functions over
// values: which agents are its canaries and which wave each agent is in
// (Plan), and what the run's limits allow at a given moment (Limits). The
// server keeps the state and the clock; nothing here reads either.
package rollout

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
)

// Agent is what planning needs of an agent.
type Agent struct {
	ID       string
	Platform string
	OSFamily string
	Labels   map[string]string
}

// Wave is one wave of a plan.
type Wave struct {
	Name    string
	Members []int // indexes into the planned agents, in their order
}

// Plan is how a run's agents are split into waves. Wave 0 holds the
// canaries when there are any.
type Plan struct {
	Waves  []Wave
	Wave   []int  // per agent: its wave
	Canary []bool // per agent: chosen as a canary
}

// DefaultDonePercent is the share of a wave that must succeed before the
// next starts (as Teleport's rollout groups): a few dead hosts do not
// freeze a run.
const DefaultDonePercent = 90

// DefaultCanarySoak is how long the canaries must stay good after the last
// of them ended, when the run does not say.
const DefaultCanarySoak = 5 * time.Minute

// Check validates c for a run over total agents.
func Check(c protocol.RunControls, total int) error {
	switch {
	case c.Canary < 0 || c.Canary > 1000:
		return fmt.Errorf("canary %d is not from 0 to 1000", c.Canary)
	case len(c.CanaryCover) > 8:
		return fmt.Errorf("canary_cover: at most 8 label keys")
	case c.CanarySoakSeconds < 0 || c.CanarySoakSeconds > 7*24*3600:
		return fmt.Errorf("canary_soak_seconds %d is not from 0 to a week", c.CanarySoakSeconds)
	case len(c.Waves) > 0 && len(c.WaveLabel) > 0:
		return fmt.Errorf("give waves or wave_label, not both")
	case len(c.Waves) > 20 || len(c.WaveLabel) > 20:
		return fmt.Errorf("at most 20 waves")
	case c.WaveWaitSeconds < 0 || c.WaveWaitSeconds > 7*24*3600:
		return fmt.Errorf("wave_wait_seconds %d is not from 0 to a week", c.WaveWaitSeconds)
	case c.WaveDonePercent < 0 || c.WaveDonePercent > 100:
		return fmt.Errorf("wave_done_percent %d is not from 0 to 100", c.WaveDonePercent)
	case c.MaxConcurrentPercent < 0 || c.MaxConcurrentPercent > 100:
		return fmt.Errorf("max_concurrent_percent %g is not from 0 to 100", c.MaxConcurrentPercent)
	case c.MaxFailuresPercent < 0 || c.MaxFailuresPercent > 100:
		return fmt.Errorf("max_failures_percent %g is not from 0 to 100", c.MaxFailuresPercent)
	case c.MinSample < 0 || c.MinSample > 1000000:
		return fmt.Errorf("min_sample %d is out of range", c.MinSample)
	case c.RatePerMinute < 0 || c.RatePerMinute > 100000:
		return fmt.Errorf("rate_per_minute %d is not from 0 to 100000", c.RatePerMinute)
	case c.Ramp != 0 && (c.Ramp < 1 || c.Ramp > 10):
		return fmt.Errorf("ramp %g is not from 1 to 10", c.Ramp)
	case c.Ramp != 0 && c.RatePerMinute == 0:
		return fmt.Errorf("ramp needs rate_per_minute")
	case c.SpreadSeconds < 0 || c.SpreadSeconds > 30*24*3600:
		return fmt.Errorf("spread_seconds %d is not from 0 to 30 days", c.SpreadSeconds)
	}
	for _, k := range c.CanaryCover {
		if k == "" || len(k) > 63 {
			return fmt.Errorf("canary_cover: %q is not a label key", k)
		}
	}
	prev := 0.0
	for i, w := range c.Waves {
		p, err := percent(w)
		if err != nil {
			return fmt.Errorf("waves[%d]: %w", i, err)
		}
		if p <= prev {
			return fmt.Errorf("waves: %q is not above the wave before it (waves are cumulative shares, e.g. 5%%,25%%,100%%)", w)
		}
		prev = p
	}
	if len(c.Waves) > 0 && prev != 100 {
		return fmt.Errorf("waves: the last wave must be 100%% (got %s): every selected agent is in a wave", c.Waves[len(c.Waves)-1])
	}
	seen := map[string]bool{}
	for i, l := range c.WaveLabel {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("wave_label[%d]: %q is not key=value (e.g. ring=canary)", i, l)
		}
		if seen[l] {
			return fmt.Errorf("wave_label: %q twice", l)
		}
		seen[l] = true
	}
	if c.Window != "" {
		if _, err := window.Parse(c.Window); err != nil {
			return err
		}
	}
	return checkHealth(c)
}

// percent parses "25%" (or "25") as 25.
func percent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(v) || v <= 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a share from 0%% to 100%%", s)
	}
	return v, nil
}

// NewPlan splits agents (in the run's order) into waves: the canaries
// first, then the waves by share or by label, or one wave. c must have
// passed Check.
func NewPlan(agents []Agent, c protocol.RunControls) Plan {
	p := Plan{Wave: make([]int, len(agents)), Canary: make([]bool, len(agents))}
	rest := make([]int, 0, len(agents))
	if c.Canary > 0 {
		can := canaries(agents, c.Canary, c.CanaryCover)
		for _, i := range can {
			p.Canary[i] = true
		}
		p.Waves = append(p.Waves, Wave{Name: "canary", Members: can})
	}
	for i := range agents {
		if !p.Canary[i] {
			rest = append(rest, i)
		}
	}
	add := func(name string, members []int) {
		if len(members) == 0 {
			return
		}
		for _, i := range members {
			p.Wave[i] = len(p.Waves)
		}
		p.Waves = append(p.Waves, Wave{Name: name, Members: members})
	}
	switch {
	case len(c.Waves) > 0:
		// Shares are of the whole selection, canaries included: "5%"
		// after 3 canaries of 100 agents adds 2.
		n := len(agents)
		done := n - len(rest)
		for _, w := range c.Waves {
			v, _ := percent(w)
			upto := int(math.Ceil(v / 100 * float64(n)))
			k := max(0, min(upto-done, len(rest)))
			add(strings.TrimSpace(w), rest[:k])
			rest, done = rest[k:], done+k
		}
		add("rest", rest)
	case len(c.WaveLabel) > 0:
		for _, l := range c.WaveLabel {
			k, v, _ := strings.Cut(l, "=")
			var in, out []int
			for _, i := range rest {
				if agents[i].Labels[k] == v {
					in = append(in, i)
				} else {
					out = append(out, i)
				}
			}
			add(l, in)
			rest = out
		}
		add("rest", rest)
	default:
		add("all", rest)
	}
	return p
}

// canaries picks n agents covering every platform, OS family and value of
// the cover keys first (at each step the agent covering the most, and the
// rarest, values not yet covered), then fills up in the agents' order. Coverage can take
// more than n agents: a release broken on one OS family only must meet a
// canary of that family.
func canaries(agents []Agent, n int, cover []string) []int {
	key := func(a Agent) []string {
		ks := []string{"platform=" + a.Platform, "os=" + a.OSFamily}
		for _, k := range cover {
			if v, ok := a.Labels[k]; ok {
				ks = append(ks, "label:"+k+"="+v)
			}
		}
		return ks
	}
	// A value few agents have weighs more: the agent that covers the
	// rare ones is the one to pick (the one Windows host, the one rhel
	// host), and the common values come with it.
	need := map[string]float64{}
	for _, a := range agents {
		for _, k := range key(a) {
			need[k]++
		}
	}
	for k, n := range need {
		need[k] = 1 / n
	}
	chosen := map[int]bool{}
	var out []int
	for len(need) > 0 {
		best, gain := -1, 0.0
		for i, a := range agents {
			if chosen[i] {
				continue
			}
			g := 0.0
			for _, k := range key(a) {
				g += need[k]
			}
			if g > gain {
				best, gain = i, g
			}
		}
		if best < 0 {
			break
		}
		chosen[best] = true
		out = append(out, best)
		for _, k := range key(agents[best]) {
			delete(need, k)
		}
	}
	for i := range agents {
		if len(out) >= n {
			break
		}
		if !chosen[i] {
			chosen[i] = true
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out
}
