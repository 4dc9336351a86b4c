package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
)

// replica is a server answering reports, counting the ones it got and the
// credentials they carried.
type replica struct {
	*httptest.Server
	reports atomic.Int32
	auth    atomic.Value
	status  atomic.Int32 // answer with this status instead, when set
}

func newReplica(t *testing.T) *replica {
	r := &replica{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.auth.Store(req.Header.Get(protocol.HeaderAuthorization))
		if st := r.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		r.reports.Add(1)
		_ = json.NewEncoder(w).Encode(protocol.ReportResponse{})
	}))
	t.Cleanup(r.Close)
	return r
}

// deadURL is a URL nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// With several replicas listed, a request that cannot reach one, or that
// one answers unavailable, fails as transient and the next goes to the
// next replica; other errors do not move the client.
func TestClientFailsOver(t *testing.T) {
	ctx := context.Background()
	b, c := newReplica(t), newReplica(t)
	dead := deadURL(t)
	cl, err := NewClient(ClientOptions{Server: dead + ", " + b.URL + "," + c.URL, HTTP: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	report := func() error {
		_, err := cl.Report(ctx, "cred", protocol.ReportRequest{OrderID: "d-1"})
		return err
	}
	if err := report(); err == nil || !Transient(err) {
		t.Fatalf("a dead replica: %v, want a transient error", err)
	}
	if cl.Server() != b.URL {
		t.Fatalf("after the dead one: %s, want %s", cl.Server(), b.URL)
	}
	if err := report(); err != nil || b.reports.Load() != 1 {
		t.Fatalf("report to the second replica: %v (%d)", err, b.reports.Load())
	}
	b.status.Store(http.StatusBadRequest)
	if err := report(); err == nil || cl.Server() != b.URL {
		t.Fatalf("a 400 moved the client to %s (%v)", cl.Server(), err)
	}
	b.status.Store(http.StatusServiceUnavailable)
	if err := report(); err == nil || !Transient(err) || cl.Server() != c.URL {
		t.Fatalf("a 503: %v, client at %s, want %s", err, cl.Server(), c.URL)
	}
	if err := report(); err != nil || c.reports.Load() != 1 {
		t.Fatalf("report to the third replica: %v", err)
	}

	if _, err := NewClient(ClientOptions{Server: b.URL + ",,", HTTP: http.DefaultClient}); err == nil {
		t.Fatal("an empty URL in the list was accepted")
	}
	if err := (&config.Config{Server: b.URL + ",ftp://x"}).Validate(); err == nil || !strings.Contains(err.Error(), "ftp://x") {
		t.Fatalf("agent.yaml with a bad replica: %v", err)
	}
}

// The credential goes to every replica listed and to no other host (a
// store the server redirects a download to).
func TestCredentialToEveryReplica(t *testing.T) {
	a, b, other := newReplica(t), newReplica(t), newReplica(t)
	hc, err := NewHTTPClient(&config.Config{Server: a.URL + "," + b.URL}, func() string { return "secret" })
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		r    *replica
		want string
	}{{a, "Bearer secret"}, {b, "Bearer secret"}, {other, ""}} {
		resp, err := hc.Get(tt.r.URL + "/v1/packs/1.0.0/manifest.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, _ := tt.r.auth.Load().(string); got != tt.want {
			t.Errorf("%s got Authorization %q, want %q", tt.r.URL, got, tt.want)
		}
	}
}
