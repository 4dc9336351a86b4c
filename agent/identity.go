package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/platform"
)

// Identity is state/identity.json. Until enrollment ID is a random local
// placeholder ("local-..."); enrollment replaces it with the server-issued
// id and adds the credential. The file holds a secret: mode 0600.
type Identity struct {
	ID string `json:"id"`
	// Fingerprint is the machine fingerprint the identity was made on.
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	// Credential and the fields below are set by enrollment.
	Credential string    `json:"credential,omitempty"`
	Server     string    `json:"server,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
}

// Enrolled reports whether the identity carries a server-issued credential.
func (i Identity) Enrolled() bool { return i.Credential != "" }

// maxIdentitySize bounds state/identity.json.
const maxIdentitySize = 64 << 10

var (
	// ErrNoIdentity means the home has no state/identity.json.
	ErrNoIdentity = errors.New("no identity (state/identity.json missing)")
	// ErrBadIdentity means state/identity.json exists but is not usable.
	ErrBadIdentity = errors.New("unusable state/identity.json")
)

// Fingerprint returns the machine fingerprint: a SHA-256 of the platform's
// machine id, so the raw id (which other software may use as a secret)
// never leaves the host. ErrNotSupported when the OS has no machine id.
func Fingerprint() (string, error) {
	id, err := platform.MachineID()
	if err != nil {
		return "", err
	}
	return FingerprintOf(id), nil
}

// FingerprintOf hashes a machine id into a fingerprint.
func FingerprintOf(machineID string) string {
	sum := sha256.Sum256([]byte("molt-agent fingerprint\x00" + machineID))
	return hex.EncodeToString(sum[:16])
}

// ReadIdentity reads state/identity.json.
func ReadIdentity(h home.Home) (Identity, error) {
	var id Identity
	b, err := smallfile.Read(h.IdentityPath(), maxIdentitySize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return id, ErrNoIdentity
	case errors.Is(err, smallfile.ErrTooLarge):
		return id, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	case err != nil:
		return id, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	if id.ID == "" {
		return id, fmt.Errorf("%w: no id", ErrBadIdentity)
	}
	return id, nil
}

// WriteIdentity replaces state/identity.json atomically with mode 0600.
func WriteIdentity(h home.Home, id Identity) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteJSON(h.IdentityPath(), id, 0o600)
}

// NewPlaceholderID returns a random local id for an agent not yet enrolled.
func NewPlaceholderID(random io.Reader) (string, error) {
	var b [12]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return "local-" + hex.EncodeToString(b[:]), nil
}

// IdentityChange says what EnsureIdentity did.
type IdentityChange int

const (
	IdentityLoaded IdentityChange = iota
	IdentityCreated
	// IdentityReplaced: the stored identity was made on another machine
	// (a cloned image) or could not be read; a new one replaced it.
	IdentityReplaced
)

// EnsureIdentity loads the identity, or makes one when there is none or
// when its fingerprint is not this machine's. An empty fingerprint (the OS
// has no machine id) never replaces an identity: without one, cloning
// cannot be detected and reset-identity before imaging is the only guard.
func EnsureIdentity(h home.Home, fingerprint string, now time.Time, random io.Reader) (Identity, IdentityChange, error) {
	if random == nil {
		random = rand.Reader
	}
	id, err := ReadIdentity(h)
	change := IdentityCreated
	switch {
	case err == nil && (fingerprint == "" || id.Fingerprint == fingerprint):
		return id, IdentityLoaded, nil
	case err == nil:
		change = IdentityReplaced
	case errors.Is(err, ErrNoIdentity):
	case errors.Is(err, ErrBadIdentity):
		change = IdentityReplaced
	default:
		return Identity{}, 0, err
	}
	pid, err := NewPlaceholderID(random)
	if err != nil {
		return Identity{}, 0, err
	}
	id = Identity{ID: pid, Fingerprint: fingerprint, Created: now.UTC()}
	if err := WriteIdentity(h, id); err != nil {
		return Identity{}, 0, fmt.Errorf("write identity: %w", err)
	}
	return id, change, nil
}

// ResetIdentity removes state/identity.json. It returns the identity it
// removed (ok false when there was none).
func ResetIdentity(h home.Home) (removed Identity, ok bool, err error) {
	removed, rerr := ReadIdentity(h)
	err = os.Remove(h.IdentityPath())
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("remove identity: %w", err)
	}
	if rerr != nil {
		removed = Identity{}
	}
	return removed, true, nil
}
