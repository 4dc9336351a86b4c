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
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
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

// CheckAll checks the workloads of one platform: each one, and that no
// two share a name.
func CheckAll(ws []Workload) error {
	if len(ws) > MaxWorkloads {
		return fmt.Errorf("%w: %d workloads, at most %d", ErrBadSpec, len(ws), MaxWorkloads)
	}
	seen := map[string]bool{}
	for _, w := range ws {
		if err := w.Check(); err != nil {
			return err
		}
		if seen[w.Spec.Name] {
			return fmt.Errorf("%w: workload %q: named twice", ErrBadSpec, w.Spec.Name)
		}
		seen[w.Spec.Name] = true
	}
	return nil
}

// Check validates the spec and the file list: paths stay inside the
// workload's directory, the command is one of the files and executable,
// sizes and hashes are well formed and within the limits.
func (w Workload) Check() error {
	if err := w.Spec.Check(); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: workload %q: %s", ErrBadSpec, w.Spec.Name, fmt.Sprintf(format, args...))
	}
	if len(w.Files) == 0 {
		return bad("no files")
	}
	if len(w.Files) > MaxFiles {
		return bad("%d files, at most %d", len(w.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(w.Files))
	dirs := map[string]bool{}
	var total int64
	for _, f := range w.Files {
		if !SafePath(f.Path) {
			return bad("file %q: not a clean relative path inside the workload", f.Path)
		}
		low := strings.ToLower(f.Path)
		if seen[low] {
			return bad("file %q: named twice (paths may not differ only in case)", f.Path)
		}
		seen[low] = true
		for d := path.Dir(low); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		if f.Size < 0 || f.Size > MaxFileSize {
			return bad("file %q: size %d out of range (0..%d)", f.Path, f.Size, int64(MaxFileSize))
		}
		total += f.Size
		if !hashRe().MatchString(f.SHA256) {
			return bad("file %q: sha256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
		}
		if err := checkMode(f.Mode); err != nil {
			return bad("file %q: %v", f.Path, err)
		}
	}
	for d := range dirs {
		if seen[d] {
			return bad("%q is both a file and a directory", d)
		}
	}
	if total > MaxTreeSize {
		return bad("files add up to %d bytes, at most %d", total, int64(MaxTreeSize))
	}
	cmd, ok := w.File(w.Spec.Command)
	if !ok {
		return bad("command %q is not one of the workload's files", w.Spec.Command)
	}
	if !cmd.Executable() {
		return bad("command %q is not executable (mode %s)", w.Spec.Command, cmd.Mode)
	}
	if w.Spec.Dir != "" && seen[strings.ToLower(w.Spec.Dir)] {
		return bad("dir %q is a file", w.Spec.Dir)
	}
	return nil
}

func checkMode(m string) error {
	if len(m) != 4 || m[0] != '0' {
		return fmt.Errorf("mode %q is not four octal digits such as \"0755\"", m)
	}
	v, err := strconv.ParseUint(m, 8, 32)
	if err != nil {
		return fmt.Errorf("mode %q is not four octal digits such as \"0755\"", m)
	}
	if v&0o400 == 0 {
		return fmt.Errorf("mode %s: the owner must be able to read it", m)
	}
	return nil
}

// Check validates the spec on its own (the files are Workload.Check's).
func (s Spec) Check() error {
	bad := func(format string, args ...any) error {
		name := s.Name
		return fmt.Errorf("%w: workload %q: %s", ErrBadSpec, name, fmt.Sprintf(format, args...))
	}
	if !ValidName(s.Name) {
		return fmt.Errorf("%w: name %q: 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit", ErrBadSpec, s.Name)
	}
	if b, err := json.Marshal(s); err != nil || len(b) > MaxSpecSize {
		return bad("spec is larger than %d bytes", MaxSpecSize)
	}
	if !SafePath(s.Command) {
		return bad("command %q: not a clean relative path inside the workload's directory", s.Command)
	}
	if len(s.Args) > maxArgs {
		return bad("%d args, at most %d", len(s.Args), maxArgs)
	}
	for i, a := range s.Args {
		if err := checkValue(a); err != nil {
			return bad("args[%d]: %v", i, err)
		}
	}
	if len(s.Env) > maxEnv {
		return bad("env: %d variables, at most %d", len(s.Env), maxEnv)
	}
	for k, v := range s.Env {
		if !envRe().MatchString(k) {
			return bad("env: %q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", k)
		}
		if strings.HasPrefix(strings.ToUpper(k), "MOLT_") {
			return bad("env: %s: names starting with MOLT_ are set by molt", k)
		}
		if err := checkValue(v); err != nil {
			return bad("env: %s: %v", k, err)
		}
	}
	if s.Dir != "" && !SafePath(s.Dir) {
		return bad("dir %q: not a clean relative path inside the workload's directory", s.Dir)
	}
	if err := s.Ready.check(); err != nil {
		return bad("ready: %v", err)
	}
	if s.Live != nil {
		if err := s.Live.check(); err != nil {
			return bad("live: %v", err)
		}
	}
	if s.Busy != nil {
		if err := s.Busy.check(); err != nil {
			return bad("busy: %v", err)
		}
	}
	if s.Stop.Signal != "" && !slices.Contains(stopSignals, s.Stop.Signal) {
		return bad("stop: signal %q: one of %s", s.Stop.Signal, strings.Join(stopSignals, ", "))
	}
	if err := checkDuration(s.Stop.Grace); err != nil {
		return bad("stop: grace: %v", err)
	}
	switch s.Restart.Policy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		return bad("restart: policy %q: one of always, on-failure, never", s.Restart.Policy)
	}
	for what, d := range map[string]Duration{"backoff_min": s.Restart.BackoffMin, "backoff_max": s.Restart.BackoffMax, "stable_after": s.Restart.StableAfter} {
		if err := checkDuration(d); err != nil {
			return bad("restart: %s: %v", what, err)
		}
	}
	d := s.Defaults()
	if d.Restart.BackoffMax < d.Restart.BackoffMin {
		return bad("restart: backoff_max %s is below backoff_min %s", d.Restart.BackoffMax.D(), d.Restart.BackoffMin.D())
	}
	return nil
}

func (r Ready) check() error {
	if err := r.Probe.check(KindHTTP, KindTCP, KindCommand, KindRunning, KindFile); err != nil {
		return err
	}
	for what, d := range map[string]Duration{"within": r.Within, "interval": r.Interval} {
		if err := checkDuration(d); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
	}
	if r.Running != 0 && r.Within != 0 && r.Running >= r.Within {
		return fmt.Errorf("running %s is not below within %s", r.Running.D(), r.Within.D())
	}
	return nil
}

func (l Live) check() error {
	if err := l.Probe.check(KindHTTP, KindTCP, KindCommand); err != nil {
		return err
	}
	if err := checkDuration(l.Interval); err != nil {
		return fmt.Errorf("interval: %v", err)
	}
	if l.Failures < 0 || l.Failures > 100 {
		return fmt.Errorf("failures %d: 1 to 100", l.Failures)
	}
	return nil
}

func (b Busy) check() error { return b.Probe.check(KindHTTP, KindCommand) }

// check validates p as one of the allowed kinds.
func (p Probe) check(allowed ...string) error {
	kind := p.Kind()
	switch {
	case kind == "":
		return fmt.Errorf("no check: one of %s", strings.Join(allowed, ", "))
	case kind == "multiple":
		return fmt.Errorf("more than one check: one of %s", strings.Join(allowed, ", "))
	case !slices.Contains(allowed, kind):
		return fmt.Errorf("check kind %q is not allowed here: one of %s", kind, strings.Join(allowed, ", "))
	}
	if err := checkDuration(p.Timeout); err != nil {
		return fmt.Errorf("timeout: %v", err)
	}
	switch kind {
	case KindHTTP:
		u, err := url.Parse(p.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(p.HTTP) > maxValue {
			return fmt.Errorf("http %q: not an http(s) URL", p.HTTP)
		}
	case KindTCP:
		if _, port, err := net.SplitHostPort(p.TCP); err != nil || port == "" {
			return fmt.Errorf("tcp %q: not host:port", p.TCP)
		}
	case KindCommand:
		if len(p.Command) > maxArgs {
			return fmt.Errorf("command: %d words, at most %d", len(p.Command), maxArgs)
		}
		for i, a := range p.Command {
			if err := checkValue(a); err != nil {
				return fmt.Errorf("command[%d]: %v", i, err)
			}
		}
		if c := p.Command[0]; !SafePath(c) && !isAbs(c) {
			return fmt.Errorf("command %q: a path inside the workload's directory, or an absolute one", c)
		}
	case KindRunning:
		if err := checkDuration(p.Running); err != nil || p.Running <= 0 {
			return fmt.Errorf("running: a duration from 1ms to %s", maxDuration)
		}
	}
	return nil
}

func isAbs(p string) bool {
	return strings.HasPrefix(p, "/") || (len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/'))
}

func checkDuration(d Duration) error {
	if d < 0 || d.D() > maxDuration {
		return fmt.Errorf("%s: out of range (0 to %s)", d.D(), maxDuration)
	}
	return nil
}

func checkValue(v string) error {
	if len(v) > maxValue {
		return fmt.Errorf("longer than %d bytes", maxValue)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r == 0 || (unicode.IsControl(r) && r != '\t') }) {
		return fmt.Errorf("contains a control character")
	}
	return nil
}

// SafePath reports whether p is a clean relative slash path that stays
// inside its directory (no "..", no leading "/", no backslash, no ":").
func SafePath(p string) bool {
	if p == "" || len(p) > maxPath || strings.ContainsAny(p, `\:`) || strings.HasPrefix(p, "/") {
		return false
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r == 0 || unicode.IsControl(r) }) {
		return false
	}
	c := path.Clean(p)
	return c == p && c != "." && c != ".." && !strings.HasPrefix(c, "../")
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

// windowsReserved are the device names Windows reserves in every
// directory, with any extension ("CON", "aux.txt").
var windowsReserved = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$`)
})

// CheckWindows checks what a Windows host could not install: a path
// component that is a reserved device name, ends in a dot or a space, or
// holds a character Windows refuses in a file name. The manifest checks
// it for windows/* platforms, so such a pack is refused before any host
// downloads it.
func (w Workload) CheckWindows() error {
	for _, f := range w.Files {
		for _, c := range strings.Split(f.Path, "/") {
			if windowsReserved().MatchString(c) || strings.HasSuffix(c, ".") || strings.HasSuffix(c, " ") || strings.ContainsAny(c, `<>:"|?*`) {
				return fmt.Errorf("%w: workload %q: file %q: %q cannot be a file name on Windows", ErrBadSpec, w.Spec.Name, f.Path, c)
			}
		}
	}
	return nil
}
