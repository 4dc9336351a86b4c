package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
)

// DevTLS is the development CA and server certificate molt serve --dev
// keeps in data/tls/.
type DevTLS struct {
	CAFile      string
	CertFile    string
	KeyFile     string
	Fingerprint string // SHA-256 of the CA certificate (DER), hex with colons
}

// EnsureDevTLS makes (once) a local CA and a server certificate for
// 127.0.0.1, ::1 and localhost, both ECDSA P-256, under dataDir/tls, and
// returns their paths. Later starts reuse them, so agents keep trusting
// the same CA.
func EnsureDevTLS(dataDir string, now time.Time) (DevTLS, error) {
	dir := filepath.Join(dataDir, "tls")
	d := DevTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server.key")}
	if _, err := os.Stat(d.CertFile); err == nil {
		fp, err := certFingerprint(d.CAFile)
		d.Fingerprint = fp
		return d, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return d, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return d, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "molt dev CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return d, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return d, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return d, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "molt server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(2, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return d, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return d, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return d, err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{filepath.Join(dir, "ca.key"), "EC PRIVATE KEY", caKeyDER, 0o600},
		{d.KeyFile, "EC PRIVATE KEY", keyDER, 0o600},
		{d.CAFile, "CERTIFICATE", caDER, 0o644},
		{d.CertFile, "CERTIFICATE", der, 0o644}, // last: its presence means the set is complete
	} {
		if err := atomicfile.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return d, err
		}
	}
	d.Fingerprint = fingerprint(caDER)
	return d, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(h)/2)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func certFingerprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: no PEM certificate", path)
	}
	return fingerprint(blk.Bytes), nil
}

// TLSConfig loads a certificate and key. A missing file is an error that
// says what to configure.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("no TLS certificate: set tls_cert and tls_key in the config file (or --tls-cert/--tls-key), or start with --dev for a local development CA")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// EnsureAdminToken creates the first admin token when the server has no
// token at all and writes it to dataDir/admin.token (0600). It returns the
// file's path and whether it was created now.
func (s *Server) EnsureAdminToken(ctx context.Context) (string, bool, error) {
	path := filepath.Join(s.opt.DataDir, "admin.token")
	n, err := s.st.TokenCount(ctx)
	if err != nil {
		return "", false, err
	}
	if n > 0 {
		return path, false, nil
	}
	// The file first: a crash between the two leaves a file that does not
	// work yet (the next start replaces it), never a token nobody has.
	secret := newSecret("molt_")
	if err := atomicfile.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := s.createToken(ctx, "admin", "initial admin", secret); err != nil {
		return "", false, err
	}
	return path, true, nil
}
