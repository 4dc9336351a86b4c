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
	"sync"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/platform"
)

// Hold keeps the agent from switching and restarting while it is active:
// while a process runs (Pid), until Expires, both, or (a workload's hold
// with neither) until its file is removed, at most MaxHoldFor after the
// file was last written. The file is state/holds/<id>.json, written by
// molt-agent hold or by a workload (docs/workloads.md, "the hold API").
type Hold struct {
	// ID is the file's name without ".json"; a file need not repeat it.
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
	// Created defaults to the file's modification time.
	Created time.Time `json:"created,omitzero"`
	// Pid is the process the hold lives with; 0 for none.
	Pid int `json:"pid,omitempty"`
	// Expires ends the hold; zero for none.
	Expires time.Time `json:"expires,omitzero"`
	// written is the file's modification time: a hold without a process
	// ends at the latest MaxHoldFor after it.
	written time.Time
}

// Limits of holds.
const (
	MaxHoldReason = 256
	MaxHoldFor    = 7 * 24 * time.Hour
	// MaxHolds bounds how many holds are honoured and listed.
	MaxHolds    = 32
	maxHoldSize = 4 << 10
	// maxHoldFiles bounds the files one List reads, so a directory that
	// a runaway workload filled cannot stall every check-in.
	maxHoldFiles = 1024
)

// Sentinels of hold operations.
var (
	ErrNoSuchHold = errors.New("no such hold")
	ErrTooMany    = errors.New("too many holds")
)

// holdIDRe is a hold's id: molt-agent hold's are 16 hex digits, a
// workload's are names of its own ("nightly-scan"). The first character
// keeps ".", the temp files of the file protocol, out. Compiled at its
// first use: not on the agent's way to ready.
var holdIDRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`) })

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
	return &Holds{Dir: h.HoldsDir(), Now: time.Now, Alive: platform.ProcessAlive}
}

// ValidHoldID reports whether id may name a hold (its file <id>.json).
func ValidHoldID(id string) bool { return holdIDRe().MatchString(id) }

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

// active reports whether h still holds at now. A hold without a process
// ends MaxHoldFor after its file was written at the latest, whatever it
// says: a workload that forgot its hold must not block upgrades forever.
func (s *Holds) active(h Hold, now time.Time) bool {
	if !h.Expires.IsZero() && !now.Before(h.Expires) {
		return false
	}
	if h.Pid > 0 {
		return s.Alive(h.Pid)
	}
	return now.Before(h.written.Add(MaxHoldFor))
}

// List returns the active holds, oldest first, at most MaxHolds, and
// removes the files of holds that ended (expired, their process is gone,
// or older than MaxHoldFor without a process) and of unreadable or
// invalid ones (a hold nobody can read must not block upgrades forever).
// Files whose names start with "." are a writer's temp files and are left
// alone, as are names that are no hold id.
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
	read := 0
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !holdIDRe().MatchString(id) || !e.Type().IsRegular() {
			continue
		}
		if read++; read > maxHoldFiles {
			break
		}
		h, err := readHold(s.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		h.ID = id
		if err != nil || !s.active(h, now) {
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

// readHold reads and checks one hold file: a reason of one line, and
// created and written from the file's modification time when it has none.
func readHold(path string) (Hold, error) {
	var h Hold
	fi, err := os.Stat(path)
	if err != nil {
		return h, err
	}
	b, err := smallfile.Read(path, maxHoldSize)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, err
	}
	if err := CheckReason(h.Reason); err != nil {
		return h, err
	}
	h.Reason = strings.TrimSpace(h.Reason)
	if h.Pid < 0 {
		return h, fmt.Errorf("pid %d", h.Pid)
	}
	h.written = fi.ModTime()
	if h.Created.IsZero() {
		h.Created = h.written.UTC()
	}
	return h, nil
}

// Release removes the hold with this id.
func (s *Holds) Release(id string) error {
	if !holdIDRe().MatchString(id) {
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
