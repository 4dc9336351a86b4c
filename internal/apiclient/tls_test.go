package apiclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// leaf issues a server certificate for dnsName (and 127.0.0.1 unless
// dnsName is "other.test"), valid until notAfter, with the chain up to
// (not including) the root.
func (ca *testCA) leaf(t *testing.T, dnsName string, notAfter time.Time, chain ...*testCA) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if dnsName != "other.test" {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, i := range chain {
		c.Certificate = append(c.Certificate, i.cert.Raw)
	}
	return c
}

func (ca *testCA) file(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func tlsServer(t *testing.T, cert tls.Certificate) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); r.Method == "POST" && !bytes.Contains(b, []byte(`"a"`)) {
			http.Error(w, "the body was lost", http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{"n": 1}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// get posts to url's /v1/ok (with a body, which a retry must send again)
// trusting caFile.
func get(t *testing.T, url, caFile string) error {
	t.Helper()
	c, err := New(Options{Server: url, CAFile: caFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(context.Background(), Request{Method: "POST", Path: "/v1/ok", Body: map[string]string{"a": "b"}}, nil)
}

// The CA file is checked as crypto/tls checks its roots: the chain, the
// name, the validity period.
func TestCAFileVerification(t *testing.T) {
	root := newTestCA(t, "molt test root", nil)
	inter := newTestCA(t, "molt test intermediate", root)
	other := newTestCA(t, "another root", nil)
	later := time.Now().Add(time.Hour)

	viaInter := tlsServer(t, inter.leaf(t, "molt.test", later, inter))
	direct := tlsServer(t, root.leaf(t, "molt.test", later))
	otherName := tlsServer(t, root.leaf(t, "other.test", later))
	expired := tlsServer(t, root.leaf(t, "molt.test", time.Now().Add(-time.Hour)))

	for _, tc := range []struct {
		name    string
		url, ca string
		want    error // nil: trusted
	}{
		{"root signs the server", direct.URL, root.file(t), nil},
		{"through an intermediate the server sends", viaInter.URL, root.file(t), nil},
		{"the intermediate as the CA file", viaInter.URL, inter.file(t), nil},
		{"a CA that did not sign it", direct.URL, other.file(t), x509.UnknownAuthorityError{}},
		{"another name", otherName.URL, root.file(t), x509.HostnameError{}},
		{"expired", expired.URL, root.file(t), x509.CertificateInvalidError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := get(t, tc.url, tc.ca)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *CertError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *CertError", err, err)
			}
			var ok bool
			switch tc.want.(type) {
			case x509.UnknownAuthorityError:
				ok = errors.As(err, new(x509.UnknownAuthorityError))
			case x509.HostnameError:
				ok = errors.As(err, new(x509.HostnameError))
			case x509.CertificateInvalidError:
				ok = errors.As(err, new(x509.CertificateInvalidError))
			}
			if !ok {
				t.Fatalf("error %v, want a %T in it", err, tc.want)
			}
		})
	}
}

// The system's roots are loaded only when the CA file does not vouch for
// the server.
func TestCAFileSystemRootsOnlyWhenNeeded(t *testing.T) {
	root := newTestCA(t, "molt test root", nil)
	srv := tlsServer(t, root.leaf(t, "molt.test", time.Now().Add(time.Hour)))
	for _, tc := range []struct {
		name       string
		ca         string
		wantOK     bool
		wantSystem bool
	}{
		{"the file vouches", root.file(t), true, false},
		{"the file does not", newTestCA(t, "another root", nil).file(t), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Server: srv.URL, CAFile: tc.ca})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				err = c.Do(context.Background(), Request{Method: "POST", Path: "/v1/ok", Body: map[string]string{"a": "b"}}, nil)
				if (err == nil) != tc.wantOK {
					t.Fatalf("trusted: %v (%v), want %v", err == nil, err, tc.wantOK)
				}
			}
			cf := c.hc.Transport.(*caFirst)
			if loaded := cf.all.Load() != nil; loaded != tc.wantSystem {
				t.Errorf("system roots loaded: %v, want %v", loaded, tc.wantSystem)
			}
		})
	}
}

// A server the system's roots vouch for stays trusted when a CA file is
// given too (SSL_CERT_FILE stands in for the system's roots, in a process
// of its own since Go reads them once).
func TestCAFileAddsToSystemRoots(t *testing.T) {
	if os.Getenv("MOLT_TEST_SYSTEM_ROOTS_URL") != "" {
		if err := get(t, os.Getenv("MOLT_TEST_SYSTEM_ROOTS_URL"), os.Getenv("MOLT_TEST_SYSTEM_ROOTS_CA")); err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("SSL_CERT_FILE does not replace the system's roots on " + runtime.GOOS)
	}
	system := newTestCA(t, "a system root", nil)
	srv := tlsServer(t, system.leaf(t, "molt.test", time.Now().Add(time.Hour)))
	unrelated := newTestCA(t, "the CA file's root", nil)
	for _, tc := range []struct {
		name       string
		systemFile string
		wantOK     bool
	}{
		{"the system vouches", system.file(t), true},
		{"nobody vouches", unrelated.file(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestCAFileAddsToSystemRoots$")
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+tc.systemFile, "SSL_CERT_DIR=/nonexistent",
				"MOLT_TEST_SYSTEM_ROOTS_URL="+srv.URL, "MOLT_TEST_SYSTEM_ROOTS_CA="+unrelated.file(t))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.wantOK {
				t.Fatalf("trusted: %v, want %v\n%s", err == nil, tc.wantOK, out)
			}
		})
	}
}
