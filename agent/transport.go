package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/protocol"
)

// maxCAFile bounds ca_file.
const maxCAFile = 1 << 20

// NewHTTPClient returns the client the agent talks to its server with, for
// check-ins and pack downloads alike: it trusts cfg.CAFile (in addition to
// the system roots) and adds the agent's credential, as credential()
// returns it at the time of each request, to requests to the server's own
// origin only. A manifest may point artifacts at another store; that store
// never sees the credential. The client has no overall timeout (downloads
// and long polls are long): callers bound requests with their context.
func NewHTTPClient(cfg *config.Config, credential func() string) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	var roots *lazyRoots
	if cfg.CAFile != "" {
		pem, err := readCA(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		roots = &lazyRoots{pem: pem, conf: tlsConf}
	}
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 15 * time.Second,
		// The ceiling for every request: a check-in may be held up to
		// MaxPollSeconds. Each request has its own, shorter deadline from
		// its context (a check-in: the wait it announced plus a margin).
		ResponseHeaderTimeout: protocol.MaxPollSeconds*time.Second + pollMargin,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		// HTTP/1.1: the server parks an idle HTTP/1.1 check-in without a
		// goroutine or buffers and cannot do so for an HTTP/2 stream, so
		// one agent costs it far less memory this way (docs/server.md,
		// Capacity). A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	var origins []*url.URL
	if cfg.Server != "" {
		us, err := apiclient.ParseServers(cfg.Server)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		origins = us
	}
	return &http.Client{Transport: &credentialTransport{base: base, origins: origins, credential: credential, roots: roots}}, nil
}

// readCA reads ca_file and checks that it holds a certificate, so that a
// bad file is a configuration error at the start, not at the first
// request.
func readCA(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("ca_file: %s is larger than %d bytes", path, maxCAFile)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", path)
	}
	return b, nil
}

// lazyRoots sets the transport's roots (the system's plus ca_file's) on
// the first request. Loading the system's roots reads and parses every
// certificate under /etc/ssl (tens of milliseconds), which has no place
// on the agent's way to ready: ready does not need the server.
type lazyRoots struct {
	once sync.Once
	pem  []byte
	conf *tls.Config
}

// set runs before the transport's first request; the transport reads
// conf only when it dials, which comes after.
func (l *lazyRoots) set() {
	l.once.Do(func() {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(l.pem)
		l.conf.RootCAs = pool
	})
}

// credentialTransport adds the bearer credential to requests to the
// server's origins (each replica listed) and to nothing else: not to a
// store a manifest or a redirect points artifacts at.
type credentialTransport struct {
	base       http.RoundTripper
	origins    []*url.URL
	credential func() string
	roots      *lazyRoots // nil: the system's roots, which crypto/tls loads itself
}

func (t *credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.roots != nil {
		t.roots.set()
	}
	if t.credential == nil || !t.ours(r.URL) || r.Header.Get(protocol.HeaderAuthorization) != "" {
		return t.base.RoundTrip(r)
	}
	c := t.credential()
	if c == "" {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set(protocol.HeaderAuthorization, "Bearer "+c)
	return t.base.RoundTrip(r)
}

func (t *credentialTransport) ours(u *url.URL) bool {
	for _, o := range t.origins {
		if sameOrigin(o, u) {
			return true
		}
	}
	return false
}

func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && hostPort(a) == hostPort(b)
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
