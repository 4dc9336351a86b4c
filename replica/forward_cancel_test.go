//go:build unix

package replica

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A client that gives up on a forwarded long poll (an agent stopping, a
// fleet reconnecting at once) is no fault of the leader: the follower
// neither logs a warning nor forgets the leader's address for it. A
// leader that does not answer still is both.
func TestForwarderClientGone(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	db := openDB(t)
	parked := make(chan struct{}, 1)
	leader := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parked <- struct{}{}
		<-r.Context().Done() // a long poll, held until the client goes
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
	if _, _, err := db.AcquireLease(context.Background(), LeaseName, "L", leader.URL, time.Minute); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	f := &Forwarder{DB: db, Self: "F", Transport: tr, Log: zap.New(core), Wait: 3 * time.Second}
	served := make(chan struct{}, 1)
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.ServeHTTP(w, r)
		served <- struct{}{}
	}))
	defer follower.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", follower.URL+"/v1/agent/checkin", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-parked:
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not reach the leader")
	}
	cancel()
	<-errc
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower still holds the poll its client gave up")
	}
	if n := logs.FilterMessage("forward to the leader").Len(); n != 0 {
		t.Errorf("%d warnings for a client that went away, want none: %v", n, logs.All())
	}
	f.mu.Lock()
	checked := f.checked
	f.mu.Unlock()
	if checked.IsZero() {
		t.Error("the follower forgot the leader's address because a client went away")
	}

	// The leader gone: that is worth a warning, and a new look at the lease.
	leader.CloseClientConnections()
	leader.Close()
	resp, err := http.Post(follower.URL+"/v1/agent/checkin", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-served
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with the leader gone: %s, want 502 or 503", resp.Status)
	}
	if n := logs.FilterMessage("forward to the leader").Len(); n == 0 {
		t.Error("no warning with the leader gone")
	}
}
