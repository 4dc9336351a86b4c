package platform

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"text/template"
	"time"
	"unicode"
)

// The service systems molt-supervisor installs itself into. The strings are
// the names github.com/kardianos/service gives them (service.Platform()).
const (
	SystemSystemd = "linux-systemd"
	SystemUpstart = "linux-upstart"
	SystemOpenRC  = "linux-openrc"
	SystemRCS     = "linux-rcs"
	SystemProcd   = "linux-procd"
	SystemSysV    = "unix-systemv"
	SystemLaunchd = "darwin-launchd"
	SystemFreeBSD = "freebsd"
	SystemSMF     = "solaris-smf"
	SystemAIX     = "aix-ssrc"
	SystemWindows = "windows-service"
)

// ServiceSystems lists every system RenderService knows, in a stable order.
var ServiceSystems = []string{
	SystemSystemd, SystemUpstart, SystemOpenRC, SystemRCS, SystemProcd, SystemSysV,
	SystemLaunchd, SystemFreeBSD, SystemSMF, SystemAIX, SystemWindows,
}

// DefaultServiceName is the service name of the OS's default home.
const DefaultServiceName = "molt-supervisor"

const (
	maxServiceName = 64
	// SRC subsystem names are at most 30 bytes (with the terminating NUL).
	maxServiceNameAIX = 29
	// restartDelay is how long every service manager waits before starting a
	// supervisor that exited. Short, because the supervisor is what keeps
	// the agent and its upgrades alive; it has its own backoff for the agent.
	restartDelay = time.Second
	// stopMargin is added to the supervisor's stop grace to give the
	// service manager's stop timeout: the supervisor needs the grace to stop
	// its agent, then a moment to exit itself.
	stopMargin = 15 * time.Second
	// DefaultStopGrace is the supervisor's default grace for its agent.
	DefaultStopGrace = 30 * time.Second
)

var (
	// ErrServiceInstalled: the service is already installed, exactly as
	// Install would install it.
	ErrServiceInstalled = errors.New("service already installed")
	// ErrServiceConflict: a service of that name is installed with another
	// definition (another home, or an older molt).
	ErrServiceConflict = errors.New("another service of that name is installed")
	// ErrServiceNotInstalled: no service of that name is installed.
	ErrServiceNotInstalled = errors.New("service not installed")
	// ErrServiceRecoveryIncomplete: the service is installed, but the
	// service manager refused part of the restart settings (Wine's SCM
	// knows no FailureActionsOnNonCrashFailures).
	ErrServiceRecoveryIncomplete = errors.New("service installed, but the service manager refused a recovery setting")
)

// ServiceSpec is the molt-supervisor service of one home.
type ServiceSpec struct {
	Name string // service name; unique per host
	Home string // absolute agent home
	// Exe is the service executable, <home>/bin/molt-supervisor[.exe]; it
	// is run as `Exe run --home Home`.
	Exe string
	// StopGrace is the supervisor's grace for stopping its agent; the
	// service manager waits StopGrace plus a margin before it kills.
	StopGrace time.Duration
}

// ServiceNameFor is the default service name for home: "molt-supervisor" for
// the OS's default home (even when MOLT_HOME is set), else
// "molt-supervisor-" and the path made into a name ("/srv/b/molt" ->
// "molt-supervisor-srv-b-molt"), so two homes on one host get two services
// and install, status and uninstall agree on the name without being told.
// A path too long for a name is cut and given a hash of the whole path.
func ServiceNameFor(home string) string {
	if samePath(home, osDefaultHome()) {
		return DefaultServiceName
	}
	var b strings.Builder
	dash := true
	for _, r := range strings.ToLower(home) {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" {
		slug = "root"
	}
	name := DefaultServiceName + "-" + slug
	limit := maxServiceName
	if runtime.GOOS == "aix" {
		limit = maxServiceNameAIX
	}
	if len(name) > limit {
		sum := sha256.Sum256([]byte(home))
		h := hex.EncodeToString(sum[:4])
		name = strings.TrimRight(name[:limit-len(h)-1], "-") + "-" + h
	}
	return name
}

func samePath(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	if runtime.GOOS == "windows" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// ValidServiceName checks a service name: a letter or digit, then letters,
// digits, '.', '_' or '-', at most 64 characters (29 on AIX). Every system
// molt supports accepts these, and they need no quoting anywhere.
func ValidServiceName(name, system string) error {
	limit := maxServiceName
	if system == SystemAIX {
		limit = maxServiceNameAIX
	}
	if name == "" || len(name) > limit {
		return fmt.Errorf("service name %q: want 1 to %d characters", name, limit)
	}
	for i, r := range name {
		ok := r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-", r)))
		if !ok {
			return fmt.Errorf("service name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// validServicePath checks a path that goes into service definitions. The
// definitions are shell scripts, systemd units, XML and (through
// kardianos/service) its own template language; rather than quote for all
// of them, a path must be absolute and made of characters none of them
// treats specially.
func validServicePath(what, p, system string) error {
	abs := strings.HasPrefix(p, "/")
	if system == SystemWindows {
		abs = len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') || strings.HasPrefix(p, `\\`)
	}
	if !abs {
		return fmt.Errorf("%s %q: not an absolute path", what, p)
	}
	if len(p) > 512 {
		return fmt.Errorf("%s: longer than 512 characters", what)
	}
	for _, r := range p {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
		case strings.ContainsRune("/._-+@,:~ ", r):
		case system == SystemWindows && strings.ContainsRune(`\()`, r):
		default:
			return fmt.Errorf("%s %q: the character %q cannot go into a service definition safely; use letters, digits, space and / . _ - + @ , : ~", what, p, r)
		}
	}
	return nil
}

// Validate checks the spec for system.
func (s ServiceSpec) Validate(system string) error {
	if err := ValidServiceName(s.Name, system); err != nil {
		return err
	}
	if err := validServicePath("home", s.Home, system); err != nil {
		return err
	}
	if err := validServicePath("executable", s.Exe, system); err != nil {
		return err
	}
	if s.StopGrace < 0 || s.StopGrace > time.Hour {
		return fmt.Errorf("stop grace %s: want 0 to 1h", s.StopGrace)
	}
	return nil
}

// Arguments are what the service manager passes to the executable.
func (s ServiceSpec) Arguments() []string { return []string{"run", "--home", s.Home} }

// DisplayName is the human name shown by service managers that have one.
func (s ServiceSpec) DisplayName() string { return "molt supervisor (" + s.Home + ")" }

// Description says what the service is for.
func (s ServiceSpec) Description() string {
	return "Runs the molt agent of " + s.Home + ", rolls back bad upgrades and upgrades itself."
}

// StopTimeout is how long the service manager lets a stop take before it
// kills what is left.
func (s ServiceSpec) StopTimeout() time.Duration {
	g := s.StopGrace
	if g == 0 {
		g = DefaultStopGrace
	}
	return g + stopMargin
}

// Definition is a rendered service definition.
type Definition struct {
	System string
	// Path is the file Install writes; empty where the definition lives in
	// the service manager's own database (Windows SCM).
	Path string
	// Text is the file's content; for Windows, the settings applied, as
	// JSON.
	Text string
	// Option is the kardianos/service option key that carries Text, empty
	// when kardianos takes no template for this system.
	Option string
}

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"sh":      shQuote,
	"systemd": systemdQuote,
	"xml":     xmlEscape,
	"rcvar":   rcVar,
	"join":    strings.Join,
}).ParseFS(templateFS, "templates/*.tmpl"))

// templateData is what our templates see. The first fields carry the same
// names and values kardianos/service gives its own templates.
type templateData struct {
	Name        string
	DisplayName string
	Description string
	Path        string
	Arguments   []string

	Home            string
	Definition      string // the installed file
	PIDFile         string
	LogFile         string
	StopTimeoutSec  int
	RestartDelaySec int
}

// kardianos/service Config.Option keys for custom templates.
const (
	optSystemd = "SystemdScript"
	optSysV    = "SysvScript" // also read by procd, FreeBSD, Solaris and AIX
	optRCS     = "RCSScript"
	optUpstart = "UpstartScript"
	optOpenRC  = "OpenRCScript"
	optLaunchd = "LaunchdConfig"
)

// RenderService renders the definition of spec for system. It is pure: any
// system can be rendered on any OS, which is what the golden tests do.
func RenderService(system string, spec ServiceSpec) (Definition, error) {
	if err := spec.Validate(system); err != nil {
		return Definition{}, err
	}
	if system == SystemWindows {
		b, err := json.MarshalIndent(windowsServiceSettings(spec), "", "  ")
		if err != nil {
			return Definition{}, err
		}
		return Definition{System: system, Text: string(b) + "\n"}, nil
	}
	var file, def, opt string
	switch system {
	case SystemSystemd:
		file, def, opt = "systemd.service.tmpl", "/etc/systemd/system/"+spec.Name+".service", optSystemd
	case SystemUpstart:
		file, def, opt = "upstart.conf.tmpl", "/etc/init/"+spec.Name+".conf", optUpstart
	case SystemOpenRC:
		file, def, opt = "openrc.tmpl", "/etc/init.d/"+spec.Name, optOpenRC
	case SystemSysV:
		file, def, opt = "sysv.sh.tmpl", "/etc/init.d/"+spec.Name, optSysV
	case SystemRCS:
		file, def, opt = "sysv.sh.tmpl", "/etc/init.d/"+spec.Name, optRCS
	case SystemProcd:
		file, def, opt = "procd.tmpl", "/etc/init.d/"+spec.Name, optSysV
	case SystemLaunchd:
		file, def, opt = "launchd.plist.tmpl", "/Library/LaunchDaemons/"+spec.Name+".plist", optLaunchd
	case SystemFreeBSD:
		file, def, opt = "freebsd-rc.tmpl", "/usr/local/etc/rc.d/"+spec.Name, optSysV
	case SystemSMF:
		file, def, opt = "smf.xml.tmpl", "/lib/svc/manifest/application/"+spec.Name+".xml", optSysV
	case SystemAIX:
		file, def, opt = "aix-init.tmpl", "/etc/rc.d/init.d/"+spec.Name, optSysV
	default:
		return Definition{}, fmt.Errorf("service system %q: %w", system, ErrNotSupported)
	}
	data := templateData{
		Name:            spec.Name,
		DisplayName:     spec.DisplayName(),
		Description:     spec.Description(),
		Path:            spec.Exe,
		Arguments:       spec.Arguments(),
		Home:            spec.Home,
		Definition:      def,
		PIDFile:         "/var/run/" + spec.Name + ".pid",
		LogFile:         path.Join(spec.Home, "logs", "service.log"),
		StopTimeoutSec:  int(spec.StopTimeout() / time.Second),
		RestartDelaySec: int(restartDelay / time.Second),
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, file, data); err != nil {
		return Definition{}, fmt.Errorf("render %s: %w", file, err)
	}
	// kardianos/service renders the text once more with its own engine;
	// the validated inputs cannot produce its delimiters, the templates
	// must not either.
	if bytes.Contains(b.Bytes(), []byte("{{")) || bytes.Contains(b.Bytes(), []byte("}}")) {
		return Definition{}, fmt.Errorf("render %s: output contains template delimiters", file)
	}
	return Definition{System: system, Path: def, Text: b.String(), Option: opt}, nil
}

// WindowsRecovery is the SCM recovery configuration Install applies.
type WindowsRecovery struct {
	// Actions, one per failure; the SCM repeats the last one.
	Actions []WindowsRecoveryAction `json:"actions"`
	// ResetPeriodSeconds: failures older than this are forgotten.
	ResetPeriodSeconds uint32 `json:"reset_period_seconds"`
	// OnNonCrashFailures makes a stop with a non-zero exit code count as a
	// failure too. The supervisor's Windows self-upgrade relies on it: it
	// exits with an error and the SCM starts the new binary.
	OnNonCrashFailures bool `json:"on_non_crash_failures"`
}

// WindowsRecoveryAction is one SCM recovery step.
type WindowsRecoveryAction struct {
	Type  string `json:"type"` // "restart"
	Delay string `json:"delay"`
}

// WindowsServiceSettings is what Install sets in the SCM.
type WindowsServiceSettings struct {
	Name        string          `json:"name"`
	DisplayName string          `json:"display_name"`
	Description string          `json:"description"`
	Executable  string          `json:"executable"`
	Arguments   []string        `json:"arguments"`
	StartType   string          `json:"start_type"`
	Recovery    WindowsRecovery `json:"recovery"`
	// PreshutdownTimeoutSeconds is how long the SCM waits for the service
	// to stop when the host shuts down: the stop timeout.
	PreshutdownTimeoutSeconds uint32 `json:"preshutdown_timeout_seconds"`
}

func windowsServiceSettings(spec ServiceSpec) WindowsServiceSettings {
	restart := WindowsRecoveryAction{Type: "restart", Delay: restartDelay.String()}
	return WindowsServiceSettings{
		Name:        spec.Name,
		DisplayName: spec.DisplayName(),
		Description: spec.Description(),
		Executable:  spec.Exe,
		Arguments:   spec.Arguments(),
		StartType:   "automatic",
		Recovery: WindowsRecovery{
			Actions:            []WindowsRecoveryAction{restart, restart, restart},
			ResetPeriodSeconds: 86400,
			OnNonCrashFailures: true,
		},
		PreshutdownTimeoutSeconds: uint32(spec.StopTimeout() / time.Second),
	}
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// systemdQuote quotes one word of an ExecStart= line.
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$")
	return `"` + r.Replace(s) + `"`
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// rcVar makes a name usable in shell variable names (FreeBSD rc.conf).
func rcVar(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, s)
}
