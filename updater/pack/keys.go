package pack

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"

	"github.com/moltfleet/molt/internal/smallfile"
)

// Limits on key material read from files or configuration.
const (
	maxPublicKeyFile = 4 << 10
	maxSecretKeyFile = 4 << 10
)

var (
	// ErrBadKey is wrapped by every failure to parse a public or secret key.
	ErrBadKey = errors.New("bad key")
	// ErrWrongPassphrase means an encrypted secret key did not decrypt.
	ErrWrongPassphrase = errors.New("wrong passphrase")
)

// Key is a trusted minisign public key.
type Key struct {
	pub minisign.PublicKey
	// Source is where the key came from (a file path or "inline"), for
	// messages.
	Source string
}

// ID is the key id as the minisign tool prints it (FormatKeyID).
func (k Key) ID() string { return FormatKeyID(k.pub.ID()) }

// String is the public key's base64 line ("RW..."), usable inline in
// agent.yaml's trusted_keys.
func (k Key) String() string { return k.pub.String() }

// MarshalText is the content of a minisign .pub file.
func (k Key) MarshalText() ([]byte, error) {
	return []byte("untrusted comment: minisign public key " + k.ID() + "\n" + k.String() + "\n"), nil
}

// Equal reports whether k and o are the same public key.
func (k Key) Equal(o Key) bool { return k.pub.Equal(o.pub) }

// FormatKeyID renders a minisign key id the way the minisign tool does:
// uppercase hex without leading zeros (its "%" PRIX64), so an id whose
// first digit would be 0 has 15 digits, or fewer.
func FormatKeyID(id uint64) string { return fmt.Sprintf("%X", id) }

// ParsePublicKey reads a minisign public key: either the content of a .pub
// file (an "untrusted comment:" line, then the key) or the bare base64 line.
func ParsePublicKey(text string) (Key, error) {
	if len(text) > maxPublicKeyFile {
		return Key{}, fmt.Errorf("%w: longer than %d bytes", ErrBadKey, maxPublicKeyFile)
	}
	var line string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "untrusted comment:") {
			continue
		}
		if line != "" {
			return Key{}, fmt.Errorf("%w: more than one key line", ErrBadKey)
		}
		line = l
	}
	if line == "" {
		return Key{}, fmt.Errorf("%w: no key found", ErrBadKey)
	}
	var pub minisign.PublicKey
	if err := pub.UnmarshalText([]byte(line)); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, strings.TrimPrefix(err.Error(), "minisign: "))
	}
	return Key{pub: pub, Source: "inline"}, nil
}

// LoadTrustedKeys turns each spec into a key. A spec is either an inline
// minisign public key (the base64 line, "RW...") or the path of a .pub file.
// The error names the spec that is wrong.
func LoadTrustedKeys(specs []string) ([]Key, error) {
	keys := make([]Key, 0, len(specs))
	for _, spec := range specs {
		k, err := loadKey(spec)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func loadKey(spec string) (Key, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Key{}, fmt.Errorf("%w: empty trusted key", ErrBadKey)
	}
	if looksInline(s) {
		k, err := ParsePublicKey(s)
		if err != nil {
			return Key{}, fmt.Errorf("trusted key %q: %w", abbrev(s), err)
		}
		return k, nil
	}
	b, err := smallfile.Read(s, maxPublicKeyFile)
	if err != nil {
		return Key{}, fmt.Errorf("trusted key %s: %w", s, err)
	}
	k, err := ParsePublicKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("trusted key %s: %w", s, err)
	}
	k.Source = s
	return k, nil
}

// looksInline tells a bare minisign key from a path: minisign public keys
// are 56 base64 characters starting with "RW" (the Ed25519 algorithm tag),
// which no sensible key path is.
func looksInline(s string) bool {
	if len(s) != 56 || !strings.HasPrefix(s, "RW") {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

func abbrev(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// SecretKey is a minisign secret (signing) key.
type SecretKey struct {
	priv minisign.PrivateKey
}

// Public returns the matching public key.
func (s SecretKey) Public() Key {
	return Key{pub: s.priv.Public().(minisign.PublicKey), Source: "secret key"}
}

// ID is the key id (the same as the public key's).
func (s SecretKey) ID() string { return FormatKeyID(s.priv.ID()) }

// GenerateKey makes a new key pair from random (crypto/rand when nil).
func GenerateKey(random io.Reader) (Key, SecretKey, error) {
	if random == nil {
		random = rand.Reader
	}
	pub, priv, err := minisign.GenerateKey(random)
	if err != nil {
		return Key{}, SecretKey{}, fmt.Errorf("generate key: %w", err)
	}
	return Key{pub: pub, Source: "generated"}, SecretKey{priv: priv}, nil
}

// KDFCost is the scrypt cost of a passphrase-protected secret key.
type KDFCost int

const (
	// CostSensitive is what the minisign tool uses (libsodium's "sensitive"
	// limits: 1 GiB of memory and a few seconds to unlock).
	CostSensitive KDFCost = iota
	// CostInteractive is libsodium's "interactive" limit (16 MiB, well
	// under a second): for keys unlocked often, e.g. by CI.
	CostInteractive
)

func (c KDFCost) limits() (ops, mem uint64) {
	if c == CostInteractive {
		return 524288, 16777216
	}
	return 33554432, 1073741824
}

// Layout of a minisign secret key (after base64): signature algorithm,
// KDF algorithm, checksum algorithm, salt, scrypt ops and mem limits, then
// key id, Ed25519 key and checksum (XORed with the scrypt key stream when
// encrypted).
const (
	skSize        = 158
	skKDFNone     = 0x0000
	skKDFScrypt   = 0x6353 // "Sc"
	skChkBlake2b  = 0x3242 // "B2"
	skPayloadSize = 8 + 64 + 32
)

// MarshalSecretKey encodes s as a minisign secret key file. With an empty
// passphrase the key is stored unencrypted; otherwise it is encrypted the
// way the minisign tool does it (scrypt with cost, XOR, BLAKE2b checksum).
func MarshalSecretKey(s SecretKey, passphrase string, cost KDFCost) ([]byte, error) {
	var b [skSize]byte
	binary.LittleEndian.PutUint16(b[0:], minisign.EdDSA)
	binary.LittleEndian.PutUint16(b[4:], skChkBlake2b)
	payload := b[54:]
	binary.LittleEndian.PutUint64(payload, s.priv.ID())
	raw, err := s.priv.MarshalText()
	if err != nil {
		return nil, err
	}
	// The Ed25519 key is not exported by minisign.PrivateKey; take it from
	// its own (unencrypted) encoding.
	dec, err := decodeSecret(raw)
	if err != nil {
		return nil, err
	}
	copy(payload[8:72], dec[62:126])
	// The checksum covers algorithm, key id and key; the minisign tool
	// checks it even for unencrypted keys.
	var msg [2 + 72]byte
	binary.LittleEndian.PutUint16(msg[:], minisign.EdDSA)
	copy(msg[2:], payload[:72])
	sum := blake2b.Sum256(msg[:])
	copy(payload[72:], sum[:])
	if passphrase == "" {
		binary.LittleEndian.PutUint16(b[2:], skKDFNone)
	} else {
		binary.LittleEndian.PutUint16(b[2:], skKDFScrypt)
		salt := b[6:38]
		if _, err := io.ReadFull(rand.Reader, salt); err != nil {
			return nil, fmt.Errorf("salt: %w", err)
		}
		ops, mem := cost.limits()
		binary.LittleEndian.PutUint64(b[38:], ops)
		binary.LittleEndian.PutUint64(b[46:], mem)
		n, r, p := scryptParams(ops, mem)
		stream, err := scrypt.Key([]byte(passphrase), salt, n, r, p, skPayloadSize)
		if err != nil {
			return nil, fmt.Errorf("scrypt: %w", err)
		}
		subtle.XORBytes(payload, payload, stream)
	}
	const comment = "untrusted comment: minisign encrypted secret key\n"
	out := []byte(comment + base64.StdEncoding.EncodeToString(b[:]) + "\n")
	return out, nil
}

func decodeSecret(text []byte) ([]byte, error) {
	var line []byte
	for _, l := range bytes.Split(text, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || bytes.HasPrefix(l, []byte("untrusted comment:")) {
			continue
		}
		line = l
		break
	}
	b, err := base64.StdEncoding.DecodeString(string(line))
	if err != nil || len(b) != skSize {
		return nil, fmt.Errorf("%w: not a minisign secret key", ErrBadKey)
	}
	return b, nil
}

// scryptParams mirrors libsodium's (and minisign's) mapping of ops and mem
// limits onto scrypt's N, r and p, so that keys we encrypt decrypt there.
func scryptParams(ops, mem uint64) (n, r, p int) {
	const minOps = 1 << 15
	const maxRP = 0x3fffffff
	if ops < minOps {
		ops = minOps
	}
	r = 8
	if ops < mem/32 {
		p = 1
		for i := 1; i < 63; i++ {
			if n = 1 << i; uint64(n) > ops/(8*uint64(r)) {
				break
			}
		}
		return n, r, p
	}
	for i := 1; i < 63; i++ {
		if n = 1 << i; uint64(n) > mem/(256*uint64(r)) {
			break
		}
	}
	if rp := (ops / 4) / uint64(n); rp < maxRP {
		p = int(rp) / r
	} else {
		p = maxRP / r
	}
	return n, r, p
}

// SecretKeyEncrypted reports whether a secret key file needs a passphrase.
func SecretKeyEncrypted(text []byte) bool {
	b, err := decodeSecret(text)
	return err == nil && binary.LittleEndian.Uint16(b[2:]) == skKDFScrypt
}

// ParseSecretKey decodes a minisign secret key file, decrypting it with
// passphrase when it is encrypted (ErrWrongPassphrase when that fails).
func ParseSecretKey(text []byte, passphrase string) (SecretKey, error) {
	if len(text) > maxSecretKeyFile {
		return SecretKey{}, fmt.Errorf("%w: longer than %d bytes", ErrBadKey, maxSecretKeyFile)
	}
	b, err := decodeSecret(text)
	if err != nil {
		return SecretKey{}, err
	}
	if binary.LittleEndian.Uint16(b[0:]) != minisign.EdDSA || binary.LittleEndian.Uint16(b[4:]) != skChkBlake2b {
		return SecretKey{}, fmt.Errorf("%w: unsupported secret key algorithm", ErrBadKey)
	}
	switch binary.LittleEndian.Uint16(b[2:]) {
	case skKDFScrypt:
		if passphrase == "" {
			return SecretKey{}, fmt.Errorf("%w: the secret key is encrypted and no passphrase was given", ErrWrongPassphrase)
		}
		priv, err := minisign.DecryptKey(passphrase, text)
		if err != nil {
			return SecretKey{}, fmt.Errorf("%w: cannot decrypt the secret key", ErrWrongPassphrase)
		}
		return SecretKey{priv: priv}, nil
	case skKDFNone:
		var priv minisign.PrivateKey
		if err := priv.UnmarshalText(text); err != nil {
			return SecretKey{}, fmt.Errorf("%w: %v", ErrBadKey, strings.TrimPrefix(err.Error(), "minisign: "))
		}
		return SecretKey{priv: priv}, nil
	default:
		return SecretKey{}, fmt.Errorf("%w: unsupported key derivation", ErrBadKey)
	}
}

// LoadSecretKey reads a secret key file. passphrase is called only when
// the key is encrypted.
func LoadSecretKey(path string, passphrase func() (string, error)) (SecretKey, error) {
	b, err := smallfile.Read(path, maxSecretKeyFile)
	if err != nil {
		return SecretKey{}, fmt.Errorf("secret key: %w", err)
	}
	var pass string
	if SecretKeyEncrypted(b) {
		if passphrase == nil {
			return SecretKey{}, fmt.Errorf("secret key %s: %w: the key is encrypted and no passphrase was given", path, ErrWrongPassphrase)
		}
		if pass, err = passphrase(); err != nil {
			return SecretKey{}, fmt.Errorf("secret key %s: %w", path, err)
		}
	}
	k, err := ParseSecretKey(b, pass)
	if err != nil {
		return SecretKey{}, fmt.Errorf("secret key %s: %w", path, err)
	}
	return k, nil
}
