// Package workload is the small Go package a workload (the operator's own
// program that a molt pack carries and the supervisor runs) imports to
// talk to molt: who it is, where its state survives upgrades, how it says
// it is ready, and how it holds an upgrade back while it does work that
// must not be interrupted. See docs/workloads.md.
//
// It depends on the standard library only and speaks the documented file
// protocol, so a program built with it keeps working with any molt that
// honours that protocol. Outside molt (MOLT_* unset: a developer's run, a
// test) every call is harmless: Ready and Hold do nothing and succeed.
package workload

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The variables the supervisor sets for a workload.
const (
	EnvName     = "MOLT_WORKLOAD"
	EnvVersion  = "MOLT_WORKLOAD_VERSION"
	EnvHome     = "MOLT_HOME"
	EnvDir      = "MOLT_WORKLOAD_DIR"
	EnvDataDir  = "MOLT_DATA_DIR"
	EnvAgentID  = "MOLT_AGENT_ID"
	EnvHoldsDir = "MOLT_HOLDS_DIR"
	EnvReady    = "MOLT_READY_FILE"
)

// Name is the workload's name ("" when not run by molt).
func Name() string { return os.Getenv(EnvName) }

// Version is the version of the pack the workload's files come from.
func Version() string { return os.Getenv(EnvVersion) }

// Home is molt's home directory on the host.
func Home() string { return os.Getenv(EnvHome) }

// Dir is the directory of the workload's files
// (versions/<v>/workloads/<name>): read-only in spirit, replaced by the
// next version.
func Dir() string { return os.Getenv(EnvDir) }

// AgentID is the host agent's id once enrolled ("" before, or outside
// molt).
func AgentID() string { return os.Getenv(EnvAgentID) }

// Supervised reports whether molt runs this process as a workload.
func Supervised() bool { return os.Getenv(EnvName) != "" }

// DataDir is the workload's own directory (data/<name>), kept across
// versions and rollbacks: the place for state and configuration that must
// survive an upgrade. Outside molt it is "", and the program picks its
// own default (a flag, the working directory).
func DataDir() string { return os.Getenv(EnvDataDir) }

// Ready says the workload is ready, for a spec whose ready check is
// "file: true": it creates $MOLT_READY_FILE. Calling it again is harmless;
// outside molt it does nothing.
func Ready() error {
	p := os.Getenv(EnvReady)
	if p == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("workload: ready: %w", err)
	}
	if err := writeAtomic(p, "."+filepath.Base(p)+".tmp", fmt.Appendf(nil, "%d\n", os.Getpid())); err != nil {
		return fmt.Errorf("workload: ready: %w", err)
	}
	return nil
}

// Limits of a hold, the agent's (docs/workloads.md).
const (
	MaxReason  = 256
	MaxHoldFor = 7 * 24 * time.Hour
	// maxIDPrefix keeps "<prefix>-<16 hex digits>" within 64 characters.
	maxIDPrefix = 32
)

// ErrBadHold is wrapped by the errors of a reason or a duration molt would
// not accept.
var ErrBadHold = errors.New("workload: bad hold")

// Hold tells molt the workload is busy: until release is called or this
// process exits, the agent does not switch versions (the deployment waits
// as waiting_for_host, showing reason). reason is one line of 1 to 256
// characters. release is idempotent and safe to call from any goroutine. Outside molt it does nothing and
// release is a no-op.
//
// The agent honours at most 32 holds per host: take one per piece of work
// and release it, rather than one per item.
func Hold(reason string) (release func() error, err error) {
	return hold(reason, 0)
}

// HoldFor is Hold that also ends after d (at most 7 days), whichever comes
// first: for work whose end the program might miss.
func HoldFor(reason string, d time.Duration) (release func() error, err error) {
	if d <= 0 || d > MaxHoldFor {
		return nil, fmt.Errorf("%w: duration %s: must be more than 0 and at most %s", ErrBadHold, d, MaxHoldFor)
	}
	return hold(reason, d)
}

// holdFile is the documented hold file; its id is its name.
type holdFile struct {
	Reason  string    `json:"reason"`
	Pid     int       `json:"pid"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

func hold(reason string, d time.Duration) (func() error, error) {
	r, err := checkReason(reason)
	if err != nil {
		return nil, err
	}
	dir := os.Getenv(EnvHoldsDir)
	if dir == "" {
		return func() error { return nil }, nil
	}
	id, err := newHoldID(Name())
	if err != nil {
		return nil, fmt.Errorf("workload: hold: %w", err)
	}
	now := time.Now().UTC()
	h := holdFile{Reason: r, Pid: os.Getpid(), Created: now}
	if d > 0 {
		h.Expires = now.Add(d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("workload: hold: %w", err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("workload: hold: %w", err)
	}
	path := filepath.Join(dir, id+".json")
	if err := writeAtomic(path, "."+id+".tmp", append(b, '\n')); err != nil {
		return nil, fmt.Errorf("workload: hold: %w", err)
	}
	return sync.OnceValue(func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("workload: release hold %s: %w", id, err)
		}
		return nil
	}), nil
}

// checkReason applies the agent's rule: one line, 1 to 256 characters
// once trimmed.
func checkReason(reason string) (string, error) {
	r := strings.TrimSpace(reason)
	switch {
	case r == "":
		return "", fmt.Errorf("%w: reason: required (say why, e.g. \"nightly scan\")", ErrBadHold)
	case len(r) > MaxReason:
		return "", fmt.Errorf("%w: reason: longer than %d characters", ErrBadHold, MaxReason)
	case strings.ContainsAny(r, "\n\r\x00"):
		return "", fmt.Errorf("%w: reason: must be one line", ErrBadHold)
	}
	return r, nil
}

// newHoldID returns "<prefix>-<16 hex digits>", a valid hold id
// ([a-z0-9][a-z0-9_.-]{0,63}) that says whose hold it is: prefix is the
// workload's name, cleaned, or "hold".
func newHoldID(name string) (string, error) {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if b.Len() >= maxIDPrefix {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && (c == '_' || c == '-' || c == '.'):
			b.WriteRune(c)
		}
	}
	prefix := b.String()
	if prefix == "" {
		prefix = "hold"
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return prefix + "-" + hex.EncodeToString(r[:]), nil
}

// writeAtomic writes data to path so that a reader sees the whole file or
// none: tmp (a name in path's directory) written and synced, then renamed.
func writeAtomic(path, tmp string, data []byte) error {
	dir := filepath.Dir(path)
	tmp = filepath.Join(dir, tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable where the OS allows syncing a
// directory; where it does not (Windows), the rename is durable already.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
