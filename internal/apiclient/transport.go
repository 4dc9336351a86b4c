// Package apiclient is the operator's client of the control server's HTTP
// API (/v1, JSON over TLS). It turns transport and server failures into
// one-line errors a user can act on: which address could not be reached,
// that a certificate is not trusted and how to trust it, which role a
// refused token needs, and the server's own JSON error message.
//
// The molt CLI is its main user; the agent's protocol client reuses its
// TLS and error handling (TLSConfig, Classify, ReadError).
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/buildinfo"
)

// Bounds on what the client reads from the server.
const (
	// MaxResponse bounds one JSON response (a long listing).
	MaxResponse = 64 << 20
	// MaxErrorBody bounds an error response.
	MaxErrorBody = 64 << 10
	// MaxCAFile bounds a CA bundle file.
	MaxCAFile = 1 << 20
)

var (
	// ErrNoServer means no server URL was configured.
	ErrNoServer = errors.New("no server configured")
	// ErrNotFound is wrapped by an *APIError with status 404.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized is wrapped by an *APIError with status 401 or 403.
	ErrUnauthorized = errors.New("not authorized")
)

// Options say how to reach the server.
type Options struct {
	// Server is the base URL, https://host:port.
	Server string
	// Token is the API token sent as a bearer token.
	Token string
	// CAFile is a PEM bundle to trust in addition to the system roots.
	CAFile string
	// Timeout bounds one request (not a streaming response); default 60s.
	Timeout time.Duration
	// Transport replaces the default transport (tests).
	Transport http.RoundTripper
}

// Client talks to one server with one token. Its methods are safe for
// concurrent use.
type Client struct {
	base   *url.URL
	token  string
	hc     *http.Client
	stream *http.Client
}

// New checks o and builds a client. It does not contact the server.
func New(o Options) (*Client, error) {
	base, err := ParseServer(o.Server)
	if err != nil {
		return nil, err
	}
	rt := o.Transport
	if rt == nil {
		base := http.DefaultTransport.(*http.Transport)
		if o.CAFile == "" {
			t := base.Clone()
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			rt = t
		} else if rt, err = newCAFirst(base, o.CAFile); err != nil {
			return nil, err
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	return &Client{
		base:   base,
		token:  o.Token,
		hc:     &http.Client{Transport: rt, Timeout: o.Timeout},
		stream: &http.Client{Transport: rt},
	}, nil
}

// ParseServer checks a server URL and returns it without a trailing slash.
func ParseServer(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, ErrNoServer
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not a URL like https://molt.example.com:8443", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q: a query or fragment is not allowed", s)
	}
	return u, nil
}

// ParseServers parses a server setting that may name several servers,
// separated by commas: replicas of one control server, tried in turn.
func ParseServers(s string) ([]*url.URL, error) {
	var us []*url.URL
	for _, one := range strings.Split(s, ",") {
		if strings.TrimSpace(one) == "" && strings.Contains(s, ",") {
			return nil, fmt.Errorf("server %q: an empty URL in the list", s)
		}
		u, err := ParseServer(strings.TrimSpace(one))
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	return us, nil
}

// TLSConfig trusts the system roots plus the certificates in caFile (a PEM
// bundle), if given.
func TLSConfig(caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	pem, err := readCAFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// APIError is a response with an error status.
type APIError struct {
	Status int
	// Message is the server's own message (its JSON "error"), or the
	// status text when the body said nothing useful.
	Message string
	// Role is the role the request needs, when known (403).
	Role string
}

func (e *APIError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the server refused the token (401): %s; pass a valid --token or --token-file", e.Message)
	case http.StatusForbidden:
		if e.Role != "" && !strings.Contains(e.Message, e.Role) {
			return fmt.Sprintf("this needs a token with the %s role (403): %s", e.Role, e.Message)
		}
		return fmt.Sprintf("forbidden (403): %s", e.Message)
	}
	return e.Message
}

func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	}
	return nil
}

// ConnectError means the server could not be reached, or did not answer
// in time.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string {
	if isTimeout(e.Err) {
		return fmt.Sprintf("no answer from the server at %s in time (%s)", e.Addr, shortNetError(e.Err))
	}
	return fmt.Sprintf("cannot connect to the server at %s: %s", e.Addr, shortNetError(e.Err))
}
func (e *ConnectError) Unwrap() error { return e.Err }

// CertError means the server's certificate is not trusted.
type CertError struct {
	Addr string
	Err  error
}

func (e *CertError) Error() string {
	return fmt.Sprintf("the certificate of the server at %s is not trusted (%s): pass --ca FILE (or set MOLT_CA) with the CA that signed it", e.Addr, shortNetError(e.Err))
}
func (e *CertError) Unwrap() error { return e.Err }

// ReadError reads an error response into an *APIError. The server answers
// errors as {"error": "message"}; anything else falls back to the status.
func ReadError(resp *http.Response) *APIError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Role    string `json:"role"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Message = body.Error
		if e.Message == "" {
			e.Message = body.Message
		}
		e.Role = body.Role
	}
	if e.Message == "" {
		e.Message = oneLine(string(b), 200)
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	e.Message = oneLine(e.Message, 500)
	return e
}

// Classify turns a transport error into a *ConnectError or *CertError when
// it is one; a cancelled context is returned as is.
func Classify(addr string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || (errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)) {
		return err
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &cv) {
		return &CertError{Addr: addr, Err: err}
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &ConnectError{Addr: addr, Err: err}
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// shortNetError drops the Go-specific prefixes ("Post \"https://...\":",
// "dial tcp 127.0.0.1:1:") that repeat what the message already says.
func shortNetError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se interface{ Unwrap() error }
		if errors.As(oe.Err, &se) && se.Unwrap() != nil {
			return se.Unwrap().Error()
		}
		return oe.Err.Error()
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) && cv.Err != nil {
		return cv.Err.Error()
	}
	return err.Error()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// Request is one API call.
type Request struct {
	Method string
	// Path is below the server's base URL, escaped, e.g. "/v1/runs/r-1".
	Path  string
	Query url.Values
	// Body is encoded as JSON when not nil (and not an io.Reader).
	Body any
	// Raw is sent as is (with ContentType) instead of Body.
	Raw         io.Reader
	ContentType string
	// Role is the role the endpoint needs; it names it in a 403 error.
	Role string
	// NoTimeout is for streaming responses the caller reads until done.
	NoTimeout bool
}

// Send performs r and returns the response on 2xx; the caller closes its
// body. Other statuses come back as *APIError, transport failures as
// *ConnectError or *CertError.
func (c *Client) Send(ctx context.Context, r Request) (*http.Response, error) {
	u := *c.base
	raw := c.base.EscapedPath() + r.Path
	p, err := url.PathUnescape(raw)
	if err != nil {
		return nil, fmt.Errorf("request path %q: %w", r.Path, err)
	}
	u.Path, u.RawPath = p, raw
	u.RawQuery = r.Query.Encode()
	var body io.Reader
	ctype := r.ContentType
	switch {
	case r.Raw != nil:
		body = r.Raw
	case r.Body != nil:
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "molt/"+buildinfo.Version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := c.hc
	if r.NoTimeout {
		hc = c.stream
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, Classify(c.base.Host, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		e := ReadError(resp)
		if e.Role == "" {
			e.Role = r.Role
		}
		return nil, e
	}
	return resp, nil
}

// Do performs r and decodes a JSON response into out (when not nil).
func (c *Client) Do(ctx context.Context, r Request, out any) error {
	resp, err := c.Send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return DecodeJSON(resp.Body, MaxResponse, out)
}

// DecodeJSON decodes at most max bytes of r into out; out nil discards.
func DecodeJSON(r io.Reader, max int64, out any) error {
	lr := &io.LimitedReader{R: r, N: max + 1}
	if out == nil {
		_, err := io.Copy(io.Discard, lr)
		return err
	}
	b, err := io.ReadAll(lr)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > max {
		return fmt.Errorf("response larger than %d bytes", max)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
