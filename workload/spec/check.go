package spec

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

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
