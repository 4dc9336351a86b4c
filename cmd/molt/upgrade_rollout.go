package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
)

// rolloutFlags are molt upgrade's rollout controls (docs/rollouts.md).
type rolloutFlags struct {
	maxConcurrent string
	maxFailures   string
	minSample     int
	canary        int
	canaryCover   []string
	canarySoak    time.Duration
	waves         []string
	waveLabel     []string
	waveWait      time.Duration
	waveApprove   bool
	waveDone      int
	rate          string
	ramp          string
	startAt       string
	spread        time.Duration
	window        string
	force         bool
	// Health-driven halt (docs/server.md).
	healthSoak      time.Duration
	healthOff       bool // --health-halt=false
	healthMinAgents int
	healthPercent   float64
}

func (o *rolloutFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.maxConcurrent, "max-concurrent", "10", "at most this many deployments in progress at once: a count, or a share of the run's agents like 5%")
	f.StringVar(&o.maxFailures, "max-failures", "", "halt the run when this many deployments failed or rolled back (a count, like --failure-threshold), or this share of those ended (like 2%; see --min-sample)")
	f.IntVar(&o.minSample, "min-sample", 0, "with --max-failures N%: the failure rate counts only once this many deployments ended")
	f.IntVar(&o.canary, "canary", 0, "upgrade this many agents first, and the rest only once they ended well and soaked; covers every platform and OS family even if that takes more")
	f.StringSliceVar(&o.canaryCover, "canary-cover", nil, "label keys whose every value must have a canary (e.g. role,region)")
	f.DurationVar(&o.canarySoak, "canary-soak", 0, "how long the canaries must stay good before the next wave (default 5m)")
	f.StringSliceVar(&o.waves, "waves", nil, "waves as cumulative shares of the selection, e.g. 5%,25%,100%")
	f.StringSliceVar(&o.waveLabel, "wave-label", nil, "waves by label value, in order, e.g. ring=canary,ring=early,ring=broad (agents with none of them come last)")
	f.DurationVar(&o.waveWait, "wave-wait", 0, "soak between waves: the next starts this long after one is done")
	f.BoolVar(&o.waveApprove, "wave-approve", false, "each next wave waits for \"molt runs promote ID\"")
	f.IntVar(&o.waveDone, "wave-done", 0, "percent of a wave that must succeed for it to be done (default 90: a few dead hosts do not hold the run)")
	f.StringVar(&o.rate, "rate", "", "start at most this many deployments a minute, e.g. 20/min")
	f.StringVar(&o.ramp, "ramp", "", "multiply --rate every minute by this, e.g. 2x (up to --max-concurrent)")
	f.StringVar(&o.startAt, "start-at", "", "start nothing before this time: 2026-12-04T01:00:00Z, \"2026-12-04 01:00 Europe/Berlin\", \"01:00 Europe/Berlin\" (next), or +2h")
	f.DurationVar(&o.spread, "spread", 0, "spread the deployments' starts evenly over this long (from --start-at or now)")
	f.StringVar(&o.window, "window", "", "maintenance window deployments start in, e.g. \"Mon-Fri 01:00-05:00 Europe/Berlin\" (docs/windows.md); one running when it closes finishes")
	f.BoolVar(&o.force, "force", false, "include agents whose target release is quarantined for their platform")
	f.DurationVar(&o.healthSoak, "health-soak", 0, "watch each upgraded agent this long after its trial committed (default 15m); when given, a wave is also not done before its agents soaked that long")
	f.Var(offFlag{&o.healthOff}, "health-halt", "halt the run when upgraded agents do worse than before their upgrade (workloads crash-looping, unhealthy or restarting, check-ins missed); --health-halt=false turns the watch off")
	f.Lookup("health-halt").NoOptDefVal = "true"
	f.IntVar(&o.healthMinAgents, "health-min-agents", 0, "a health signal halts the run once this many soaking agents show it (default 2; one crash loop is always enough)")
	f.Float64Var(&o.healthPercent, "health-percent", 0, "... and once this percent of the soaking agents show it (default 10)")
}

// apply checks the flags and puts them into req.
func (o *rolloutFlags) apply(req *protocol.RunRequest, now time.Time) error {
	req.Force = o.force
	c := &req.RunControls
	if v, ok := strings.CutSuffix(o.maxConcurrent, "%"); ok {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p <= 0 || p > 100 {
			return cli.Usage("--max-concurrent: %q is not a share from 0%% to 100%% (or a count)", o.maxConcurrent)
		}
		c.MaxConcurrentPercent = p
		req.MaxConcurrent = 10000
	} else {
		n, err := strconv.Atoi(o.maxConcurrent)
		if err != nil || n < 1 || n > 10000 {
			return cli.Usage("--max-concurrent: %q is not a count from 1 to 10000 or a share like 5%%", o.maxConcurrent)
		}
		req.MaxConcurrent = n
	}
	if o.maxFailures != "" {
		if v, ok := strings.CutSuffix(o.maxFailures, "%"); ok {
			p, err := strconv.ParseFloat(v, 64)
			if err != nil || p <= 0 || p > 100 {
				return cli.Usage("--max-failures: %q is not a share from 0%% to 100%% (or a count)", o.maxFailures)
			}
			c.MaxFailuresPercent = p
		} else {
			n, err := strconv.Atoi(o.maxFailures)
			if err != nil || n < 1 {
				return cli.Usage("--max-failures: %q is not a count of at least 1 or a share like 2%%", o.maxFailures)
			}
			if req.FailureThreshold != 0 && req.FailureThreshold != n {
				return cli.Usage("--max-failures %d and --failure-threshold %d say the same thing differently: give one", n, req.FailureThreshold)
			}
			req.FailureThreshold = n
		}
	}
	if o.minSample != 0 && c.MaxFailuresPercent == 0 {
		return cli.Usage("--min-sample: only with --max-failures N%%")
	}
	c.MinSample = o.minSample
	c.Canary, c.CanaryCover = o.canary, o.canaryCover
	if o.canarySoak != 0 && o.canary == 0 {
		return cli.Usage("--canary-soak: only with --canary")
	}
	c.CanarySoakSeconds = int(o.canarySoak.Round(time.Second) / time.Second)
	c.Waves, c.WaveLabel = o.waves, o.waveLabel
	c.WaveWaitSeconds = int(o.waveWait.Round(time.Second) / time.Second)
	c.WaveApprove, c.WaveDonePercent = o.waveApprove, o.waveDone
	if o.rate != "" {
		v := strings.TrimSpace(o.rate)
		for _, suf := range []string{"/minute", "/min", "/m"} {
			v = strings.TrimSuffix(v, suf)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return cli.Usage("--rate: %q is not a number of starts a minute like 20/min", o.rate)
		}
		c.RatePerMinute = n
	}
	if o.ramp != "" {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(o.ramp), "x"), 64)
		if err != nil {
			return cli.Usage("--ramp: %q is not a factor like 2x", o.ramp)
		}
		c.Ramp = f
	}
	if o.startAt != "" {
		t, err := window.ParseStart(o.startAt, now)
		if err != nil {
			return cli.Usage("--start-at: %v", err)
		}
		c.StartAt = t
	}
	c.SpreadSeconds = int(o.spread.Round(time.Second) / time.Second)
	c.Window = o.window
	if o.healthOff && (o.healthSoak != 0 || o.healthMinAgents != 0 || o.healthPercent != 0) {
		return cli.Usage("--health-soak, --health-min-agents, --health-percent: not with --health-halt=false")
	}
	if o.healthSoak < 0 {
		return cli.Usage("--health-soak: %s is negative (give a duration like 15m)", o.healthSoak)
	}
	c.NoHealthHalt = o.healthOff
	c.HealthSoakSeconds = int(o.healthSoak.Round(time.Second) / time.Second)
	c.HealthMinAgents, c.HealthPercent = o.healthMinAgents, o.healthPercent
	if err := rollout.Check(*c, 0); err != nil {
		return cli.Usage("%s", flagNames(err.Error()))
	}
	return nil
}

// offFlag is a boolean flag on by default, kept as its negation so that
// the zero rolloutFlags is the default: --health-halt=false sets it.
type offFlag struct{ off *bool }

func (f offFlag) String() string {
	if f.off == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.off)
}

func (f offFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.off = !v
	return nil
}

func (f offFlag) Type() string { return "bool" }

// flagNames says the API's field names as the flags that set them.
func flagNames(s string) string {
	return strings.NewReplacer("canary_cover", "--canary-cover", "canary_soak_seconds", "--canary-soak", "wave_label", "--wave-label",
		"wave_wait_seconds", "--wave-wait", "wave_done_percent", "--wave-done", "max_concurrent_percent", "--max-concurrent",
		"max_failures_percent", "--max-failures", "min_sample", "--min-sample", "rate_per_minute", "--rate", "spread_seconds", "--spread",
		"health_soak_seconds", "--health-soak (seconds)", "health_min_agents", "--health-min-agents", "health_percent", "--health-percent",
		"waves", "--waves", "ramp", "--ramp", "canary", "--canary").Replace(s)
}
