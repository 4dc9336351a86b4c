//go:build unix

package replica

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// A follower passes requests to the leader the lease names, over TLS it
// checks, keeping the Host the client used, marking them forwarded, and
// streaming the answer as it comes; without a leader, or when the leader
// does not answer, it says unavailable, and it never passes a forwarded
// request on again.
func TestForwarder(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	db := openDB(t)
	release := make(chan struct{})
	type seen struct{ host, by, xff, body string }
	got := make(chan seen, 10)
	leader := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Host, r.Header.Get(HeaderForwarded), r.Header.Get("X-Forwarded-For"), string(b)}
		if r.URL.Path == "/v1/events/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "id: 1\ndata: first\n\n")
			w.(http.Flusher).Flush()
			<-release
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer leader.Close()
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leader.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := PeerTransport(certFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, _, err := db.AcquireLease(ctx, LeaseName, "L", leader.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{DB: db, Self: "F", Transport: tr, Wait: 3 * time.Second}
	follower := httptest.NewServer(f)
	defer follower.Close()

	do := func(path string, hdr map[string]string) (*http.Response, error) {
		method, body := "GET", io.Reader(nil)
		if b := hdr["body"]; b != "" {
			method, body = "POST", strings.NewReader(b)
			delete(hdr, "body")
		}
		req, _ := http.NewRequest(method, follower.URL+path, body)
		req.Host = "molt.example:8443"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return http.DefaultClient.Do(req)
	}
	resp, err := do("/v1/agents", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Fatalf("forwarded: %d %s", resp.StatusCode, body)
	}
	if s := <-got; s.host != "molt.example:8443" || s.by != "F" || !strings.HasPrefix(s.xff, "127.0.0.1") {
		t.Fatalf("the leader saw %+v", s)
	}

	// An event stream arrives as it is written.
	resp, err = do("/v1/events/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-got
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "id: 1\n" {
		t.Fatalf("first line of the stream: %q %v", line, err)
	}
	close(release)
	resp.Body.Close()

	unavailable := func(what string, resp *http.Response, err error, status int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pe protocol.Error
		_ = json.NewDecoder(resp.Body).Decode(&pe)
		if resp.StatusCode != status || pe.Code != protocol.CodeUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %+v", what, resp.StatusCode, pe)
		}
	}
	resp, err = do("/v1/agents", map[string]string{HeaderForwarded: "G"})
	unavailable("a request forwarded already", resp, err, http.StatusServiceUnavailable)
	select {
	case s := <-got:
		t.Fatalf("a forwarded request was passed on again: %+v", s)
	default:
	}

	// The leader dies; another takes the lease while a request waits:
	// the request reaches the new leader.
	leader.Close()
	leader2 := httptest.NewUnstartedServer(leader.Config.Handler)
	leader2.TLS = leader.TLS
	leader2.StartTLS()
	defer leader2.Close()
	took := make(chan store.Lease, 1)
	go func() {
		time.Sleep(time.Second)
		if err := db.ReleaseLease(ctx, l); err != nil {
			t.Error(err)
		}
		l2, _, err := db.AcquireLease(ctx, LeaseName, "L2", leader2.URL, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		took <- l2
	}()
	resp, err = do("/v1/agent/report", map[string]string{"body": `{"order_id":"d-1"}`})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a request during a failover: %d", resp.StatusCode)
	}
	if s := <-got; s.body != `{"order_id":"d-1"}` {
		t.Fatalf("the new leader got the body %q", s.body)
	}
	l = <-took

	// Past the wait, a leader that does not answer is a 502.
	leader2.Close()
	resp, err = do("/v1/agents", nil)
	unavailable("the leader down", resp, err, http.StatusBadGateway)

	if err := db.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err = do("/v1/agents", nil)
	unavailable("no leader", resp, err, http.StatusServiceUnavailable)
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("without a leader the answer came after %v, not after the wait", d)
	}
}
