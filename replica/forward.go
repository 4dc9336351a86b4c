package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// HeaderForwarded marks a request a follower passed on: a replica that
// gets one and is not the leader answers 503 rather than pass it on
// again (the lease moved meanwhile; the client retries).
const HeaderForwarded = "X-Molt-Forwarded-By"

// Forwarder is a follower's handler: it passes each request to the leader
// the lease names. Long polls, event streams and downloads pass through as
// they come (responses are flushed as written).
type Forwarder struct {
	DB   *store.DB
	Self string // this replica's id
	// Transport reaches the other replicas (their TLS certificate is the
	// one clients see; see PeerTLS).
	Transport http.RoundTripper
	Log       *zap.Logger
	// Leading, when it returns a handler, is this replica's own server:
	// it leads now. A request that waited for a leader while this replica
	// took the lead is served by it.
	Leading func() http.Handler
	// Wait is how long a request waits for a leader while there is none
	// (an election under way), or while the leader the lease names
	// refuses connections (it died; its lease has not expired yet),
	// before the answer is 503 (default 15 s: a dead leader's lease
	// expires and another leads within about 10).
	Wait time.Duration

	mu      sync.Mutex
	leader  *url.URL
	checked time.Time
}

// leaderURL is the leader's address, read from the database at most
// twice a second.
func (f *Forwarder) leaderURL(ctx context.Context) (*url.URL, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < 500*time.Millisecond {
		return f.leader, nil
	}
	l, err := f.DB.CurrentLease(ctx, LeaseName)
	if err != nil {
		return nil, err
	}
	f.checked = time.Now()
	f.leader = nil
	if l.Holder != "" && l.Holder != f.Self && l.Address != "" && time.Until(l.Expires) > 0 {
		u, err := url.Parse(l.Address)
		if err == nil && u.Host != "" {
			f.leader = u
		}
	}
	return f.leader, nil
}

// Forget drops the leader's address, so that the next request reads it
// again (after a failed pass).
func (f *Forwarder) forget() {
	f.mu.Lock()
	f.checked = time.Time{}
	f.mu.Unlock()
}

func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(HeaderForwarded) != "" {
		unavailable(w, "this replica is not the leader any more: retry")
		return
	}
	deadline := time.Now().Add(f.wait())
	target, err := f.leaderURL(r.Context())
	for err == nil && target == nil && time.Now().Before(deadline) {
		if f.Leading != nil {
			if h := f.Leading(); h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		target, err = f.leaderURL(r.Context())
	}
	if err != nil || target == nil {
		unavailable(w, "no leader replica at the moment: retry")
		return
	}
	// A request the leader never got (it refused the connection) is
	// passed again, to the next leader: its body is kept for that, when
	// it is small (agents' and operators' requests; not pack uploads).
	var body []byte
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength >= 0 && r.ContentLength <= maxRetryBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxRetryBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
			return
		}
		if int64(len(b)) == r.ContentLength {
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		} else {
			writeError(w, http.StatusBadRequest, "the request's body is not as long as its Content-Length")
			return
		}
	}
	retry := r.Body == nil || r.Body == http.NoBody || body != nil
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // origin checks and the URLs of orders name what the client used
			pr.SetXForwarded()
			pr.Out.Header.Set(HeaderForwarded, f.Self)
		},
		Transport:     &leaderTransport{f: f, base: f.Transport, deadline: deadline, retry: retry, body: body},
		FlushInterval: -1, // long polls and event streams as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away (an agent stopped, or gave up on a
				// long poll): nothing is wrong with the leader. Logging it
				// would write one warning per agent a follower holds
				// whenever they reconnect at once.
				return
			}
			f.forget()
			if f.Log != nil {
				f.Log.Warn("forward to the leader", zap.String("leader", target.Host), zap.Error(err))
			}
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusBadGateway, "the leader replica did not answer: retry")
		},
	}
	p.ServeHTTP(w, r)
}

func (f *Forwarder) wait() time.Duration {
	if f.Wait <= 0 {
		return 15 * time.Second
	}
	return f.Wait
}

// leaderTransport passes a request to the leader and, while the leader
// refuses connections (the request never reached it, so passing it again
// is safe), to whichever replica the lease names next, until the
// deadline.
type leaderTransport struct {
	f        *Forwarder
	base     http.RoundTripper
	deadline time.Time
	retry    bool   // the request can be sent again
	body     []byte // its body, sent again from here
}

// maxRetryBody bounds the body a follower keeps to pass a request again.
const maxRetryBody = 1 << 20

func (t *leaderTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for {
		resp, err := t.base.RoundTrip(r)
		var op *net.OpError
		if err == nil || !t.retry || !errors.As(err, &op) || op.Op != "dial" || !time.Now().Before(t.deadline) {
			return resp, err
		}
		t.f.forget()
		select {
		case <-r.Context().Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
		r = r.Clone(r.Context())
		if t.body != nil {
			r.Body = io.NopCloser(bytes.NewReader(t.body)) // the transport closed the last one
		}
		if u, lerr := t.f.leaderURL(r.Context()); lerr == nil && u != nil {
			r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
		}
	}
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(protocol.Error{Code: protocol.CodeUnavailable, Error: msg})
}
