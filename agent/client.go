package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/protocol"
)

// Bounds on what the agent reads from the server.
const (
	// maxServerResponse bounds one check-in, enroll or report answer.
	maxServerResponse = 4 << 20
	// requestTimeout bounds enroll and report requests.
	requestTimeout = 30 * time.Second
	// pollMargin is added to the server's long-poll wait for the
	// check-in's own timeout, so a slow answer is not cut off.
	pollMargin = 30 * time.Second
)

// Sentinels of the agent protocol; *ServerError wraps the one its code
// names, so the check-in loop decides with errors.Is.
var (
	// ErrCloned: the server knows this agent id from another machine
	// fingerprint. The identity must be dropped and the agent enroll again.
	ErrCloned = errors.New("identity used by another machine")
	// ErrRevoked: the credential was revoked, or is unknown to the server.
	ErrRevoked = errors.New("credential refused")
	// ErrEnrollRefused: the enrollment token is unknown, expired or used up.
	ErrEnrollRefused = errors.New("enrollment refused")
	// ErrProtocol: the server no longer speaks this agent's protocol.
	ErrProtocol = errors.New("protocol version not supported by the server")
	// ErrOrderGone: the server does not know the order (404 on a report).
	ErrOrderGone = errors.New("order unknown to the server")
)

// ServerError is a non-2xx answer of the server.
type ServerError struct {
	Status  int
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("server: %s (%d %s)", e.Message, e.Status, e.Code)
	}
	return fmt.Sprintf("server: %s (%d)", e.Message, e.Status)
}

func (e *ServerError) Unwrap() error {
	switch {
	case e.Code == protocol.CodeIdentityCloned:
		return ErrCloned
	case e.Code == protocol.CodeAgentRevoked, e.Status == http.StatusUnauthorized && e.Code != protocol.CodeEnrollToken:
		return ErrRevoked
	case e.Code == protocol.CodeEnrollToken:
		return ErrEnrollRefused
	case e.Code == protocol.CodeProtocol, e.Status == http.StatusUpgradeRequired:
		return ErrProtocol
	case e.Status == http.StatusNotFound:
		return ErrOrderGone
	}
	return nil
}

// Transient reports whether err is worth retrying as is: the server is
// away, overloaded, restarting, or answered with a server fault.
func Transient(err error) bool {
	var ce *apiclient.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var se *ServerError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == http.StatusTooManyRequests || se.Status == http.StatusRequestTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Client speaks the agent protocol with the control server: enrollment,
// check-in and reports. It holds no credential: callers pass the current
// one per request, so re-enrollment needs no new client.
//
// The server may be several replicas, listed in agent.yaml's server
// separated by commas: the client talks to one, and moves to the next
// when that one cannot be reached or answers that it is unavailable (502,
// 503, 504). The caller's retry, with its jittered backoff, then goes to
// the next one, so a fleet does not move in a herd.
type Client struct {
	bases []*url.URL
	cur   atomic.Int32
	hc    *http.Client
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Server is agent.yaml's server URL.
	Server string
	// HTTP is the client to use, typically NewHTTPClient's (shared with
	// the updater's downloads). Its own timeouts must allow a long poll;
	// each request here is bounded by its context.
	HTTP *http.Client
	// CAFile is agent.yaml's ca_file, used when HTTP is nil.
	CAFile string
}

// NewClient checks the server URL and CA file and builds a client.
func NewClient(o ClientOptions) (*Client, error) {
	bases, err := apiclient.ParseServers(o.Server)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	hc := o.HTTP
	if hc == nil {
		tc, err := apiclient.TLSConfig(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		t := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   15 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       5 * time.Minute,
			ExpectContinueTimeout: time.Second,
			// HTTP/1.1, as NewHTTPClient: see there.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
		hc = &http.Client{Transport: t}
	}
	return &Client{bases: bases, hc: hc}, nil
}

// Server is the base URL of the server (replica) in use.
func (c *Client) Server() string { return c.base().String() }

func (c *Client) base() *url.URL { return c.bases[int(c.cur.Load())%len(c.bases)] }

// failover moves to the next replica after base failed, unless another
// request moved already.
func (c *Client) failover(base *url.URL) {
	if len(c.bases) < 2 {
		return
	}
	i := int(c.cur.Load())
	if c.bases[i%len(c.bases)] == base {
		c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.bases)))
	}
}

// Enroll exchanges an enrollment token for an agent id and credential.
func (c *Client) Enroll(ctx context.Context, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	var out protocol.EnrollResponse
	cleanEnroll(&req)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := c.post(ctx, "/v1/agent/enroll", "", req, &out); err != nil {
		return out, fmt.Errorf("enroll: %w", err)
	}
	if out.AgentID == "" || out.Credential == "" || len(out.AgentID) > protocol.MaxStringLen || len(out.Credential) > 1024 {
		return out, errors.New("enroll: the server's answer has no usable agent id or credential")
	}
	return out, nil
}

// Checkin sends the agent's status and waits for orders. It tells the
// server to hold the request at most wait (the poll_seconds it announced
// last) and gives up after wait plus a margin: the deadline comes from
// what the server was told, never from a fixed transport timeout.
func (c *Client) Checkin(ctx context.Context, credential string, req protocol.CheckinRequest, wait time.Duration) (protocol.CheckinResponse, error) {
	var out protocol.CheckinResponse
	cleanStatus(&req.Status)
	wait = min(max(wait, time.Second), protocol.MaxPollSeconds*time.Second)
	req.WaitSeconds = int(wait / time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.WaitSeconds)*time.Second+pollMargin)
	defer cancel()
	if err := c.post(ctx, "/v1/agent/checkin", credential, req, &out); err != nil {
		return out, fmt.Errorf("check-in: %w", err)
	}
	return out, nil
}

// Report sends steps, progress or the end of an order.
func (c *Client) Report(ctx context.Context, credential string, req protocol.ReportRequest) (protocol.ReportResponse, error) {
	var out protocol.ReportResponse
	cleanReport(&req)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := c.post(ctx, "/v1/agent/report", credential, req, &out); err != nil {
		return out, fmt.Errorf("report %s: %w", req.OrderID, err)
	}
	return out, nil
}

func (c *Client) post(ctx context.Context, path, credential string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if len(b) > protocol.MaxBodySize {
		return fmt.Errorf("request of %d bytes is over the server's limit", len(b))
	}
	base := c.base()
	u := *base
	u.Path = base.Path + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "molt-agent/"+buildinfo.Version)
	if credential != "" {
		req.Header.Set(protocol.HeaderAuthorization, "Bearer "+credential)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		c.failover(base)
		return apiclient.Classify(base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			c.failover(base)
		}
		return readServerError(resp)
	}
	return apiclient.DecodeJSON(resp.Body, maxServerResponse, out)
}

func readServerError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, apiclient.MaxErrorBody))
	e := &ServerError{Status: resp.StatusCode}
	var pe protocol.Error
	if json.Unmarshal(b, &pe) == nil {
		e.Code, e.Message = pe.Code, pe.Error
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	if len(e.Message) > 500 {
		e.Message = e.Message[:500]
	}
	return e
}
