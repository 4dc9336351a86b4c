package pack

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
)

// SignFile signs data, the content of a file called name (a release's
// SHA256SUMS, say), with sk, as "minisign -S -m name" does: pre-hashed, the
// time and file name in the trusted comment. The result is what
// name.minisig holds; "minisign -V -p molt.pub -m name" verifies it.
func SignFile(sk SecretKey, data []byte, name string, now time.Time) []byte {
	r := minisign.NewReader(bytes.NewReader(data))
	_, _ = io.Copy(io.Discard, r) // reading from a bytes.Reader cannot fail
	trusted := "timestamp:" + strconv.FormatInt(now.Unix(), 10) + "\tfile:" + name + "\thashed"
	return r.SignWithComments(sk.priv, trusted, "signature from molt secret key "+sk.ID())
}

// VerifyFile checks that sig is a signature of data by one of keys and
// returns the id of the key that made it. Errors wrap ErrBadSignature or
// ErrUntrustedKey.
func VerifyFile(data, sig []byte, keys []Key) (string, error) {
	s, err := parseSignature(sig)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID())
		if k.pub.ID() == s.KeyID && minisign.Verify(k.pub, data, sig) {
			return k.ID(), nil
		}
	}
	for _, k := range keys {
		if k.pub.ID() == s.KeyID {
			return "", fmt.Errorf("%w: signature by key %s does not match the file", ErrBadSignature, k.ID())
		}
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: signed by key %s, and no key is trusted", ErrUntrustedKey, FormatKeyID(s.KeyID))
	}
	return "", fmt.Errorf("%w: signed by key %s, which is not trusted (trusted: %s)",
		ErrUntrustedKey, FormatKeyID(s.KeyID), strings.Join(ids, ", "))
}
