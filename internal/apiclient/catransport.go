package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// readCAFile reads a PEM bundle of at most MaxCAFile bytes.
func readCAFile(caFile string) ([]byte, error) {
	f, err := os.Open(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, MaxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", caFile, err)
	}
	if len(pem) > MaxCAFile {
		return nil, fmt.Errorf("CA file %s: larger than %d bytes", caFile, MaxCAFile)
	}
	return pem, nil
}

// caFirst is the CLI's transport when a CA file is given. It trusts what
// TLSConfig trusts (the system's roots plus the file) but tries the file
// alone first: loading and parsing the system's roots costs one short
// command (a CLI call) about a third of its CPU, and is needed only when
// the file does not vouch for the server.
type caFirst struct {
	caOnly *http.Transport
	pem    []byte

	once sync.Once
	all  atomic.Pointer[http.Transport] // the system's roots plus the file, once needed
}

// newCAFirst builds the transport for caFile from base (which it clones).
func newCAFirst(base *http.Transport, caFile string) (*caFirst, error) {
	pem, err := readCAFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	t := base.Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &caFirst{caOnly: t, pem: pem}, nil
}

// withSystem returns the transport that trusts the system's roots too,
// built the first time it is needed.
func (c *caFirst) withSystem() *http.Transport {
	c.once.Do(func() {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(c.pem)
		t := c.caOnly.Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		c.all.Store(t)
	})
	return c.all.Load()
}

func (c *caFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if all := c.all.Load(); all != nil {
		return all.RoundTrip(r)
	}
	resp, err := c.caOnly.RoundTrip(r)
	if err == nil || !errors.As(err, new(x509.UnknownAuthorityError)) {
		return resp, err
	}
	// The handshake failed before the request was sent: send it again
	// trusting the system's roots too, if its body can be read again.
	if r.Body != nil && r.Body != http.NoBody {
		if r.GetBody == nil {
			return nil, err
		}
		body, gerr := r.GetBody()
		if gerr != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = body
	}
	return c.withSystem().RoundTrip(r)
}

// CloseIdleConnections closes both transports' idle connections.
func (c *caFirst) CloseIdleConnections() {
	c.caOnly.CloseIdleConnections()
	if all := c.all.Load(); all != nil {
		all.CloseIdleConnections()
	}
}
