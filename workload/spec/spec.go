// Package spec is the workload spec: what a pack runs besides molt-agent
// (the operator's own agent, in any language), how molt knows it started
// well and stays well, how it is stopped and restarted, and which files it
// consists of. A spec lives in the signed manifest, so a server can never
// change what runs on a host; the updater copies it, with the files' sizes,
// hashes and modes, into versions/<v>/workloads.json, which the supervisor
// runs and the agent probes.
//
// Every value is checked here, once, for the pack builder, the server's
// import and the agent: a bad spec is refused with one line naming the
// field.
package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on a spec and a workload's tree.
const (
	// MaxSpecSize bounds one spec, encoded as JSON.
	MaxSpecSize = 16 << 10
	// MaxWorkloads bounds the workloads of one platform.
	MaxWorkloads = 16
	// MaxFiles bounds the files of one workload.
	MaxFiles = 8192
	// MaxFileSize bounds one file of a workload.
	MaxFileSize = 1 << 30
	// MaxTreeSize bounds the files of one workload together.
	MaxTreeSize = 4 << 30
	maxArgs     = 64
	maxEnv      = 64
	maxValue    = 4096
	maxPath     = 512
	maxDuration = 24 * time.Hour
)

// Defaults of the optional fields (see Spec.Defaults).
const (
	DefaultReadyTimeout  = 60 * time.Second
	DefaultReadyInterval = 250 * time.Millisecond
	DefaultProbeTimeout  = 5 * time.Second
	DefaultLiveInterval  = 10 * time.Second
	DefaultLiveFailures  = 3
	DefaultStopGrace     = 10 * time.Second
	DefaultBackoffMin    = 1 * time.Second
	DefaultBackoffMax    = 60 * time.Second
	DefaultStableAfter   = 5 * time.Minute
)

// Restart policies.
const (
	RestartAlways    = "always"     // after any exit not asked for (default)
	RestartOnFailure = "on-failure" // after an exit other than 0
	RestartNever     = "never"      // never; an exit during a trial still fails it
)

// Stop signals. On Windows every value sends CTRL_BREAK_EVENT to the
// workload's console process group; "kill" skips the polite step.
var stopSignals = []string{"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "kill"}

// ErrBadSpec is wrapped by every check failure of a spec or a workload's
// file list.
var ErrBadSpec = errors.New("bad workload spec")

// The patterns are compiled at their first use, not at init: counted
// repetitions make them cost milliseconds to compile, paid otherwise by
// every start of the agent and the supervisor, on their way to ready.
var (
	nameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`) })
	envRe  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`) })
	hashRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })
)

// ValidName reports whether n may name a workload (and its directories
// versions/<v>/workloads/<n> and data/<n>).
func ValidName(n string) bool { return nameRe().MatchString(n) }

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML lets pack.yaml (gopkg.in/yaml.v3) write durations as
// "30s" too.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// Spec is one workload.
type Spec struct {
	// Name is 1 to 32 of [a-z0-9_-], starting with a letter or digit.
	Name string `json:"name" yaml:"name"`
	// Command is the program, relative to the workload's directory
	// versions/<v>/workloads/<name>/ (it must be one of the workload's
	// files and executable).
	Command string   `json:"command" yaml:"command"`
	Args    []string `json:"args,omitempty" yaml:"args"`
	// Env adds variables; names starting with MOLT_ are molt's.
	Env map[string]string `json:"env,omitempty" yaml:"env"`
	// Dir is the working directory: "" for the data directory
	// (data/<name>/, kept across versions), or a directory inside the
	// workload's directory.
	Dir     string  `json:"dir,omitempty" yaml:"dir"`
	Ready   Ready   `json:"ready" yaml:"ready"`
	Live    *Live   `json:"live,omitempty" yaml:"live"`
	Stop    Stop    `json:"stop,omitzero" yaml:"stop"`
	Restart Restart `json:"restart,omitzero" yaml:"restart"`
	Busy    *Busy   `json:"busy,omitempty" yaml:"busy"`
}

// Probe is one check. Exactly one kind is set; which kinds a check takes
// depends on the check (Ready, Live, Busy).
type Probe struct {
	// HTTP: a GET of this http(s) URL answers 2xx (Busy: a 2xx whose body
	// starts with "busy" or "idle").
	HTTP string `json:"http,omitempty" yaml:"http"`
	// TCP: host:port accepts a connection.
	TCP string `json:"tcp,omitempty" yaml:"tcp"`
	// Command: this program (argv; argv[0] relative to the workload's
	// directory, or an absolute path) exits 0 (Busy: prints "busy" or
	// "idle" first on stdout).
	Command []string `json:"command,omitempty" yaml:"command"`
	// Running (Ready only): the workload is still running this long after
	// its start.
	Running Duration `json:"running,omitempty" yaml:"running"`
	// File (Ready only): the workload created the file named by
	// $MOLT_READY_FILE (the Go package's workload.Ready does that).
	File bool `json:"file,omitempty" yaml:"file"`
	// Timeout bounds one attempt (default 5s).
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
}

// Probe kinds, as Kind returns them.
const (
	KindHTTP    = "http"
	KindTCP     = "tcp"
	KindCommand = "command"
	KindRunning = "running"
	KindFile    = "file"
)

// Kind returns which kind p is ("" when none is set, "multiple" when
// more than one is).
func (p Probe) Kind() string {
	var kinds []string
	if p.HTTP != "" {
		kinds = append(kinds, KindHTTP)
	}
	if p.TCP != "" {
		kinds = append(kinds, KindTCP)
	}
	if len(p.Command) > 0 {
		kinds = append(kinds, KindCommand)
	}
	if p.Running != 0 {
		kinds = append(kinds, KindRunning)
	}
	if p.File {
		kinds = append(kinds, KindFile)
	}
	switch len(kinds) {
	case 0:
		return ""
	case 1:
		return kinds[0]
	}
	return "multiple"
}

// Ready is how molt knows the workload started well: Probe passes within
// Within of the start, tried every Interval.
type Ready struct {
	Probe `yaml:",inline"`
	// Within is the ready timeout (default 60s; under a trial, failing
	// it rolls the version back).
	Within   Duration `json:"within,omitempty" yaml:"within"`
	Interval Duration `json:"interval,omitempty" yaml:"interval"`
}

// Live is an optional periodic check once the workload is ready: Failures
// failures in a row make it unhealthy (restarted; under a trial, the
// version is rolled back).
type Live struct {
	Probe    `yaml:",inline"`
	Interval Duration `json:"interval,omitempty" yaml:"interval"`
	Failures int      `json:"failures,omitempty" yaml:"failures"`
}

// Busy is an optional probe that says whether the workload is doing work
// that must not be interrupted; it adds to the hold files.
type Busy struct {
	Probe `yaml:",inline"`
}

// Stop is how the workload is stopped: Signal (default SIGTERM; on
// Windows CTRL_BREAK_EVENT), then a kill of its whole process group (job
// object on Windows) after Grace (default 10s).
type Stop struct {
	Signal string   `json:"signal,omitempty" yaml:"signal"`
	Grace  Duration `json:"grace,omitempty" yaml:"grace"`
}

// Restart is the restart policy after an exit not asked for, with the
// supervisor's crash backoff: BackoffMin doubling to BackoffMax, reset by
// a run of StableAfter.
type Restart struct {
	Policy      string   `json:"policy,omitempty" yaml:"policy"`
	BackoffMin  Duration `json:"backoff_min,omitempty" yaml:"backoff_min"`
	BackoffMax  Duration `json:"backoff_max,omitempty" yaml:"backoff_max"`
	StableAfter Duration `json:"stable_after,omitempty" yaml:"stable_after"`
}

// Defaults returns s with every unset optional field at its default.
// Check accepts both; runners use the result.
func (s Spec) Defaults() Spec {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&s.Ready.Within, DefaultReadyTimeout)
	def(&s.Ready.Interval, DefaultReadyInterval)
	def(&s.Ready.Timeout, DefaultProbeTimeout)
	if s.Live != nil {
		l := *s.Live
		def(&l.Interval, DefaultLiveInterval)
		def(&l.Timeout, DefaultProbeTimeout)
		if l.Failures == 0 {
			l.Failures = DefaultLiveFailures
		}
		s.Live = &l
	}
	if s.Busy != nil {
		b := *s.Busy
		def(&b.Timeout, DefaultProbeTimeout)
		s.Busy = &b
	}
	if s.Stop.Signal == "" {
		s.Stop.Signal = "SIGTERM"
	}
	def(&s.Stop.Grace, DefaultStopGrace)
	if s.Restart.Policy == "" {
		s.Restart.Policy = RestartAlways
	}
	def(&s.Restart.BackoffMin, DefaultBackoffMin)
	def(&s.Restart.BackoffMax, DefaultBackoffMax)
	def(&s.Restart.StableAfter, DefaultStableAfter)
	return s
}

// File is one file of a workload, installed at
// versions/<v>/workloads/<name>/<Path> and carried in the pack at
// <goos>_<goarch>/workloads/<name>/<Path>.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Mode is the permission bits as an octal string ("0755", "0644");
	// setuid, setgid and sticky bits are refused.
	Mode string `json:"mode"`
}

// Perm returns the file's permission bits.
func (f File) Perm() uint32 {
	v, _ := strconv.ParseUint(f.Mode, 8, 32)
	return uint32(v)
}

// Executable reports whether the owner may execute the file.
func (f File) Executable() bool { return f.Perm()&0o100 != 0 }

// Workload is a spec with its files: what the manifest carries per
// platform and versions/<v>/workloads.json holds.
type Workload struct {
	Spec  Spec   `json:"spec"`
	Files []File `json:"files"`
}

// PackPath is where a file of workload name lives in a pack for platform
// ("linux/amd64").
func PackPath(platform, name, file string) string {
	return strings.ReplaceAll(platform, "/", "_") + "/workloads/" + name + "/" + file
}

// Identity is a digest of the spec and the files (path, mode, SHA-256):
// two versions whose workload has the same identity run the same thing,
// and the supervisor does not restart it when it switches between them.
func (w Workload) Identity() string {
	files := slices.Clone(w.Files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	spec, _ := json.Marshal(w.Spec.Defaults())
	h.Write(spec)
	for _, f := range files {
		fmt.Fprintf(h, "\x00%s\x00%s\x00%s", f.Path, f.Mode, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TreeSize is the sum of the files' sizes.
func (w Workload) TreeSize() int64 {
	var n int64
	for _, f := range w.Files {
		n += f.Size
	}
	return n
}

// File returns the file at p, if the workload has one.
func (w Workload) File(p string) (File, bool) {
	for _, f := range w.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// Installed is versions/<v>/workloads.json: the workloads of one
// platform of a version, as staged by the updater before .valid.
type Installed struct {
	Version   string     `json:"version"`
	Platform  string     `json:"platform"`
	Workloads []Workload `json:"workloads"`
}

// ParseInstalled decodes and checks versions/<v>/workloads.json.
func ParseInstalled(b []byte) (Installed, error) {
	var in Installed
	if len(b) > MaxWorkloads*(MaxSpecSize+MaxFiles*(maxPath+128))+4096 {
		return in, fmt.Errorf("%w: workloads.json too large", ErrBadSpec)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("%w: workloads.json: %v", ErrBadSpec, err)
	}
	return in, CheckAll(in.Workloads)
}
