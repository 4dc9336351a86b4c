package updater

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/internal/sleep"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// Refusals: the order can never succeed as given.
var (
	// ErrNoSpace: the home's disk has not room for the artifacts plus
	// the reserve, or filled up while writing.
	ErrNoSpace = errors.New("not enough disk space")
	// ErrPlatformMissing: the pack has no artifacts for this platform
	// (the same value as pack.ErrMissingPlatform).
	ErrPlatformMissing = pack.ErrMissingPlatform
	// ErrBelowFloor: the target is lower than the highest floor of any
	// verified manifest.
	ErrBelowFloor = errors.New("target is below the version floor")
	// ErrAlreadyRunning: the target is the version that runs already.
	ErrAlreadyRunning = errors.New("target version is already running")
	// ErrVersionMismatch: the signed manifest is for another version
	// than the order names.
	ErrVersionMismatch = errors.New("manifest is for another version")
	// ErrBadOrder: the order itself is malformed (id, version, source).
	ErrBadOrder = errors.New("bad order")
)

// Errors of Switch, Abort and Finish.
var (
	// ErrUnknownOrder: the order is not the one in state/upgrade.json.
	ErrUnknownOrder = errors.New("unknown order")
	// ErrNotStaged: Switch before Prepare finished.
	ErrNotStaged = errors.New("upgrade is not staged")
	// ErrNotValid: versions/<V> has no .valid marker; never switched to.
	ErrNotValid = errors.New("version is not installed completely (no .valid)")
	// ErrTrialInProgress: the current version is still in trial; the
	// supervisor decides it before another switch.
	ErrTrialInProgress = errors.New("a trial is in progress")
	// ErrAlreadySwitched: the order switched already and cannot be
	// aborted (a rollback is the supervisor's).
	ErrAlreadySwitched = errors.New("upgrade already switched")
	// ErrBusy: another process is working on this home's upgrade (it
	// holds state/upgrade.lock). Not a refusal: try again later.
	ErrBusy = errors.New("another process is upgrading this home")
)

// refusals are the sentinels IsRefusal recognises.
var refusals = []error{
	ErrNoSpace, ErrPlatformMissing, ErrBelowFloor, ErrAlreadyRunning, ErrVersionMismatch, ErrBadOrder,
	pack.ErrUntrustedKey, pack.ErrBadSignature, pack.ErrBadManifest, pack.ErrSizeMismatch,
	pack.ErrHashMismatch, pack.ErrTooLarge, pack.ErrBadPack, pack.ErrUnsafePath, pack.ErrBadKey,
	spec.ErrBadSpec,
}

// IsRefusal reports whether err means the order cannot succeed as given
// (a bad pack, a policy refusal, no space) as opposed to a transient
// failure that another Prepare resumes.
func IsRefusal(err error) bool {
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// DefaultReserveBytes is the free space left untouched when
// Options.ReserveBytes is zero.
const DefaultReserveBytes = 64 << 20

// Options configure an Updater. Only Home and Keys are required.
type Options struct {
	Home home.Home
	// Keys are the trusted pack-signing keys, from the agent's own
	// configuration: never from the server.
	Keys []pack.Key
	// Platform is the goos/goarch to install (default: this binary's).
	Platform string
	// HTTPClient fetches HTTP sources (default: a client with connect and
	// header timeouts; no overall timeout, downloads may be long).
	HTTPClient *http.Client
	Logger     *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FreeSpace reports free bytes on the file system of dir (default
	// platform.FreeDisk; platform.ErrNotSupported skips the check).
	FreeSpace func(dir string) (uint64, error)
	// ReserveBytes is the free space to leave (default
	// DefaultReserveBytes; negative: none).
	ReserveBytes int64
	// Progress is called while artifacts arrive: at most every 256 KiB
	// per file, and at each file's end. It must return quickly.
	Progress func(Progress)
	// Retry bounds HTTP retries (zero fields take defaults).
	Retry Retry
	// StallTimeout ends a request that delivers no byte for this long
	// (default 60s); the download resumes in the next attempt.
	StallTimeout time.Duration
}

// Retry is the retry policy for HTTP requests: exponential backoff with
// full jitter, so a fleet that lost its server does not return in step.
type Retry struct {
	// Attempts is how many attempts in a row may fail without making
	// progress before the download gives up (default 8: with the default
	// backoff that is 91 to 182 s of waiting, so a server or store away
	// for a minute fails no attempt).
	Attempts int
	// Base is the first backoff (default 1s); it doubles per failure.
	Base time.Duration
	// Max caps one backoff (default 60s).
	Max time.Duration
}

// Progress is the state of one artifact's transfer.
type Progress struct {
	Order   string
	Version string
	// File is the role ("agent", "supervisor") or, for a workload's
	// file, "workload/<name>/<path>".
	File  string
	Done  int64
	Total int64
	// Method, when set, says how File was obtained: MethodDelta (made
	// from a patch and the installed file) or MethodFull (a patch was
	// offered but not used; File "*": none was offered from the
	// installed version); Reason says why or how much.
	Method, Reason string
}

// Order is one upgrade order.
type Order struct {
	// ID names the order (the server's deployment id, or a local one).
	ID      string
	Version string
	Source  Source
}

// Source is where a pack comes from: exactly one of URL and Pack.
type Source struct {
	// URL is a pack's base URL: {URL}/manifest.json, manifest.json.sig
	// and artifact paths relative to it.
	URL string `json:"url,omitempty"`
	// Pack is the path of a pack file on disk.
	Pack string `json:"pack,omitempty"`
}

// HTTPSource is a pack served over HTTP(S) under base.
func HTTPSource(base string) Source { return Source{URL: base} }

// PackSource is a pack file on disk (air-gapped hosts, troubleshooting).
func PackSource(path string) Source { return Source{Pack: path} }

func (s Source) String() string {
	if s.Pack != "" {
		return s.Pack
	}
	return s.URL
}

// Updater carries out upgrade orders on one home. Its methods are safe for
// concurrent use; they run one at a time.
type Updater struct {
	home      home.Home
	keys      []pack.Key
	platform  string
	client    *http.Client
	log       *zap.Logger
	now       func() time.Time
	freeSpace func(string) (uint64, error)
	reserve   int64
	progress  func(Progress)
	retry     Retry
	stall     time.Duration
	// checkpoint is called at each step boundary; tests crash there.
	checkpoint func(name string)
	// sleep waits for a backoff; tests shorten it.
	sleep func(ctx context.Context, d time.Duration) error

	mu sync.Mutex
}

// New returns an Updater; see Options for the defaults.
func New(o Options) *Updater {
	u := &Updater{
		home: o.Home, keys: o.Keys, platform: o.Platform, client: o.HTTPClient,
		log: o.Logger, now: o.Now, freeSpace: o.FreeSpace, reserve: o.ReserveBytes,
		progress: o.Progress, retry: o.Retry, stall: o.StallTimeout,
		checkpoint: func(string) {}, sleep: sleep.For,
	}
	if u.platform == "" {
		u.platform = buildinfo.Platform()
	}
	if u.client == nil {
		u.client = defaultClient()
	}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	if u.now == nil {
		u.now = time.Now
	}
	if u.freeSpace == nil {
		u.freeSpace = platform.FreeDisk
	}
	switch {
	case u.reserve == 0:
		u.reserve = DefaultReserveBytes
	case u.reserve < 0:
		u.reserve = 0
	}
	if u.progress == nil {
		u.progress = func(Progress) {}
	}
	// Small files arrive from several goroutines at once; the callback
	// sees one call at a time.
	report := u.progress
	var reportMu sync.Mutex
	u.progress = func(p Progress) {
		reportMu.Lock()
		defer reportMu.Unlock()
		report(p)
	}
	if u.retry.Attempts <= 0 {
		// Six were 31 to 62 s: a store down for a minute made the
		// download give up, and the order wait to be repeated.
		u.retry.Attempts = 8
	}
	if u.retry.Base <= 0 {
		u.retry.Base = time.Second
	}
	if u.retry.Max <= 0 {
		u.retry.Max = time.Minute
	}
	if u.stall <= 0 {
		u.stall = time.Minute
	}
	return u
}

const maxOrderID = 128

func (o Order) check() error {
	if o.ID == "" || len(o.ID) > maxOrderID || strings.ContainsFunc(o.ID, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: order id %q must be 1..%d printable characters", ErrBadOrder, o.ID, maxOrderID)
	}
	if !pack.ValidVersion(o.Version) {
		return fmt.Errorf("%w: %q is not a valid version", ErrBadOrder, o.Version)
	}
	switch {
	case (o.Source.URL == "") == (o.Source.Pack == ""):
		return fmt.Errorf("%w: the source needs exactly one of a URL and a pack file", ErrBadOrder)
	case o.Source.URL != "" && !strings.HasPrefix(o.Source.URL, "https://") && !strings.HasPrefix(o.Source.URL, "http://"):
		return fmt.Errorf("%w: source %q is not an http(s) URL", ErrBadOrder, o.Source.URL)
	}
	return nil
}

// State returns the in-flight (or last) order; Phase is PhaseNone when
// there has been none. While downloading, each file's Done is read from
// the bytes on disk.
func (u *Updater) State() (UpgradeState, error) {
	st, err := u.loadState()
	if err != nil {
		return st, err
	}
	if st.Phase == PhaseDownloading && pack.ValidVersion(st.Version) {
		for key, f := range st.Files {
			if f.Verified {
				continue
			}
			if fi, err := os.Stat(u.partPath(st.Version, key)); err == nil {
				f.Done = min(fi.Size(), f.Size)
			}
		}
	}
	return st, nil
}

// Switch makes the staged version current: active.json gets current=V,
// previous=the old current and a trial naming the order, in one atomic
// write. It refuses a version without .valid. Idempotent: after a crash
// it finishes the bookkeeping of a switch already written.
func (u *Updater) Switch(orderID string) error {
	return u.withOrder("switch", orderID, func(st *UpgradeState) error {
		switch st.Phase {
		case PhaseSwitched, PhaseDone:
			return nil
		case PhaseStaged:
		default:
			return fmt.Errorf("switch %s: %w (phase %s)", st.Version, ErrNotStaged, st.Phase)
		}
		if !u.home.IsValid(st.Version) {
			return fmt.Errorf("switch %s: %w", st.Version, ErrNotValid)
		}
		a, err := u.home.ReadActive()
		if err != nil && !errors.Is(err, home.ErrNoActive) {
			return fmt.Errorf("switch %s: %w", st.Version, err)
		}
		if a.Current != st.Version || a.Trial == nil || a.Trial.Order != orderID {
			switch {
			case a.Current == st.Version:
				return fmt.Errorf("switch %s: %w", st.Version, ErrAlreadyRunning)
			case a.Trial != nil:
				return fmt.Errorf("switch %s: %w for %s", st.Version, ErrTrialInProgress, a.Trial.Version)
			}
			u.checkpoint("before-switch")
			faults.Point("agent/before-switch")
			next := home.Active{
				Current:  st.Version,
				Previous: a.Current,
				Trial:    &home.Trial{Version: st.Version, Switched: u.now().UTC(), Order: orderID},
			}
			if err := u.home.WriteActive(next); err != nil {
				return fmt.Errorf("switch %s: write active.json: %w", st.Version, err)
			}
			u.log.Info("switched", zap.String("order", orderID), zap.String("target", st.Version), zap.String("previous", a.Current))
			u.checkpoint("switched")
			faults.Point("agent/after-switch")
		}
		st.Phase = PhaseSwitched
		return u.saveState(st)
	})
}

// Finish marks a switched order done (the agent calls it once the trial's
// outcome is known) and drops its cache.
func (u *Updater) Finish(orderID string) error {
	return u.withOrder("finish", orderID, func(st *UpgradeState) error {
		if st.Phase == PhaseDone {
			return nil
		}
		if st.Phase != PhaseSwitched {
			return fmt.Errorf("finish %s: %w (phase %s)", orderID, ErrNotStaged, st.Phase)
		}
		_ = removeAll(u.cacheDir(st.Version))
		st.Phase = PhaseDone
		return u.saveState(st)
	})
}

// Abort drops an order that has not been switched: its cache and staging
// directory are removed (an already staged versions/<V> stays until
// Cleanup). Aborting an unknown or already aborted order is an error and a
// no-op respectively.
func (u *Updater) Abort(orderID string) error {
	return u.withOrder("abort", orderID, func(st *UpgradeState) error {
		switch st.Phase {
		case PhaseAborted:
			return nil
		case PhaseSwitched, PhaseDone:
			return fmt.Errorf("abort %s: %w", orderID, ErrAlreadySwitched)
		}
		if pack.ValidVersion(st.Version) {
			if err := errors.Join(removeAll(u.cacheDir(st.Version)), removeAll(u.stagingDir(st.Version))); err != nil {
				return fmt.Errorf("abort %s: %w", orderID, err)
			}
		}
		st.Phase = PhaseAborted
		return u.saveState(st)
	})
}

// locked runs fn under the updater's mutex and the home's lock.
func (u *Updater) locked(fn func() error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	unlock, err := u.lockHome()
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// withOrder runs fn, locked, on the state in state/upgrade.json, which
// must be orderID's: a step of any other order is ErrUnknownOrder. verb
// names the step in errors.
func (u *Updater) withOrder(verb, orderID string, fn func(st *UpgradeState) error) error {
	return u.locked(func() error {
		st, err := u.loadState()
		if err != nil {
			return err
		}
		if st.Order != orderID || orderID == "" {
			return fmt.Errorf("%s %q: %w (upgrade.json has %q)", verb, orderID, ErrUnknownOrder, st.Order)
		}
		return fn(&st)
	})
}

// lockHome takes state/upgrade.lock so that two processes (the daemon
// and a manual "molt-agent upgrade") never work on one home at once. The
// OS drops the lock when its process dies, so a crash leaves none behind.
func (u *Updater) lockHome() (unlock func(), err error) {
	if err := os.MkdirAll(u.home.StateDir(), 0o755); err != nil {
		return nil, err
	}
	l, err := platform.LockProcess(filepath.Join(u.home.StateDir(), "upgrade.lock"))
	if errors.Is(err, platform.ErrLocked) {
		return nil, fmt.Errorf("%w: %v", ErrBusy, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock the home: %w", err)
	}
	return func() { _ = l.Unlock() }, nil
}

func (u *Updater) cacheDir(v string) string { return filepath.Join(u.home.CacheDir(), v) }

// cachePath is a verified file, partPath the same while it arrives; key
// is a state key (see item).
func (u *Updater) cachePath(v, key string) string {
	return filepath.Join(u.cacheDir(v), cacheName(key))
}
func (u *Updater) partPath(v, key string) string {
	return filepath.Join(u.cacheDir(v), cacheName(key)+".part")
}
func (u *Updater) stagingDir(v string) string {
	return filepath.Join(u.home.VersionsDir(), "."+v+".staging")
}

// exeName is the file name of a role's binary for the updater's platform.
func (u *Updater) exeName(role string) string {
	name := home.AgentExe
	if role == pack.RoleSupervisor {
		name = home.SupervisorExe
	}
	if strings.HasPrefix(u.platform, "windows/") {
		name += ".exe"
	}
	return name
}
