package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/platform"
)

// Hold keeps the agent from switching and restarting while it is active:
// while a command runs (Pid), until Expires, or both.
type Hold struct {
	ID      string    `json:"id"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	// Pid is the process the hold lives with; 0 for a hold by time only.
	Pid int `json:"pid,omitempty"`
	// Expires ends the hold; zero for a hold that lives with Pid only.
	Expires time.Time `json:"expires,omitzero"`
}

// Limits of holds.
const (
	MaxHoldReason = 256
	MaxHoldFor    = 7 * 24 * time.Hour
	// MaxHolds bounds how many holds are honoured and listed.
	MaxHolds     = 32
	maxHoldSize  = 4 << 10
	holdsDirName = "holds"
)

// Sentinels of hold operations.
var (
	ErrNoSuchHold = errors.New("no such hold")
	ErrTooMany    = errors.New("too many holds")
)

var holdIDRe = regexp.MustCompile(`^[0-9a-f]{8,32}$`)

// Holds is the set of holds of one home, one file each in state/holds/.
// Its methods are safe to call from several processes at once.
type Holds struct {
	Dir string
	// Now and Alive are injected by tests.
	Now   func() time.Time
	Alive func(pid int) bool
}

// HoldsOf returns the holds of h.
func HoldsOf(h home.Home) *Holds {
	return &Holds{Dir: filepath.Join(h.StateDir(), holdsDirName), Now: time.Now, Alive: platform.ProcessAlive}
}

// CheckReason validates a hold's reason.
func CheckReason(reason string) error {
	r := strings.TrimSpace(reason)
	switch {
	case r == "":
		return fmt.Errorf("--reason: required (say why, e.g. \"nightly backup\")")
	case len(r) > MaxHoldReason:
		return fmt.Errorf("--reason: longer than %d characters", MaxHoldReason)
	case strings.ContainsAny(r, "\n\r\x00"):
		return fmt.Errorf("--reason: must be one line")
	}
	return nil
}

// Add records a hold with the given reason, pid (0: none) and duration (0:
// none; at least one of them is required).
func (s *Holds) Add(reason string, pid int, d time.Duration) (Hold, error) {
	if err := CheckReason(reason); err != nil {
		return Hold{}, err
	}
	if pid <= 0 && d <= 0 {
		return Hold{}, errors.New("a hold needs a process or a duration")
	}
	if d < 0 || d > MaxHoldFor {
		return Hold{}, fmt.Errorf("--for: must be between 1s and %s", MaxHoldFor)
	}
	active, err := s.List()
	if err != nil {
		return Hold{}, err
	}
	if len(active) >= MaxHolds {
		return Hold{}, fmt.Errorf("%w: %d are active (release some first)", ErrTooMany, len(active))
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Hold{}, err
	}
	now := s.Now().UTC()
	h := Hold{ID: hex.EncodeToString(b[:]), Reason: strings.TrimSpace(reason), Created: now, Pid: pid}
	if d > 0 {
		h.Expires = now.Add(d)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return Hold{}, fmt.Errorf("holds: %w", err)
	}
	if err := atomicfile.WriteJSON(s.path(h.ID), h, 0o644); err != nil {
		return Hold{}, fmt.Errorf("write hold: %w", err)
	}
	return h, nil
}

func (s *Holds) path(id string) string { return filepath.Join(s.Dir, id+".json") }

// Active reports whether h still holds at now.
func (s *Holds) active(h Hold, now time.Time) bool {
	if !h.Expires.IsZero() && !now.Before(h.Expires) {
		return false
	}
	if h.Pid > 0 && !s.Alive(h.Pid) {
		return false
	}
	return true
}

// List returns the active holds, oldest first, and removes the files of
// holds that ended (expired, or their process is gone) and of unreadable
// ones (a hold nobody can read must not block upgrades forever).
func (s *Holds) List() ([]Hold, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	now := s.Now()
	var out []Hold
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !holdIDRe.MatchString(id) || !e.Type().IsRegular() {
			continue
		}
		h, err := readHold(s.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || h.ID != id || !s.active(h, now) {
			_ = os.Remove(s.path(id))
			continue
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > MaxHolds {
		out = out[:MaxHolds]
	}
	return out, nil
}

func readHold(path string) (Hold, error) {
	var h Hold
	b, err := smallfile.Read(path, maxHoldSize)
	if err != nil {
		return h, err
	}
	err = json.Unmarshal(b, &h)
	return h, err
}

// Release removes the hold with this id.
func (s *Holds) Release(id string) error {
	if !holdIDRe.MatchString(id) {
		return fmt.Errorf("%w: %q", ErrNoSuchHold, id)
	}
	err := os.Remove(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNoSuchHold, id)
	}
	return err
}

// ReleaseAll removes every hold and returns the active ones it removed.
func (s *Holds) ReleaseAll() ([]Hold, error) {
	active, err := s.List()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, h := range active {
		if err := s.Release(h.ID); err != nil && !errors.Is(err, ErrNoSuchHold) {
			errs = append(errs, err)
		}
	}
	return active, errors.Join(errs...)
}

// Reasons returns the reason of each hold, for status and check-in.
func Reasons(holds []Hold) []string {
	out := make([]string, len(holds))
	for i, h := range holds {
		out[i] = h.Reason
	}
	return out
}
