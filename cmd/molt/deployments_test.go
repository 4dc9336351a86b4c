package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestDeploymentsRetryCancel: molt deployments retry and cancel against a
// real server whose only deployment got stuck: retry prints the new
// deployment (--json exactly it), and what the server refuses exits 1
// with its reason.
func TestDeploymentsRetryCancel(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "noconfig"))
	zipPath, trusted := signedPack(t, dir)
	ctx := context.Background()
	clock := &stepClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	srv, err := server.New(ctx, server.Options{DataDir: filepath.Join(dir, "data"), TrustedKeys: trusted, Clock: clock, PollWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewTLSServer(srv.Handler())
	defer hs.Close()
	f, err := os.Open(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := srv.ImportPack(ctx, f); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.CreateToken(ctx, protocol.RoleOperator, "test")
	if err != nil {
		t.Fatal(err)
	}
	et, err := srv.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, cred string, body, out any) {
		t.Helper()
		if code, pe := postTo(t, hs, path, cred, body, out); code != 200 {
			t.Fatalf("%s: %d %+v", path, code, pe)
		}
	}
	var en protocol.EnrollResponse
	post("/v1/agent/enroll", "", protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: "web-1",
		Platform: "linux/amd64", OSFamily: "linux", Version: "1.4.0", Supervised: true, Fingerprint: "fp"}, &en)
	st := protocol.Status{ProtocolVersion: protocol.Version, Fingerprint: "fp", Name: "web-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.4.0", Supervised: true}
	checkin := func() *protocol.Order {
		var cr protocol.CheckinResponse
		post("/v1/agent/checkin", en.Credential, protocol.CheckinRequest{Status: st}, &cr)
		for i := range cr.Orders {
			if cr.Orders[i].Kind == protocol.OrderUpgrade {
				return &cr.Orders[i]
			}
		}
		return nil
	}
	checkin()

	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, tok.Secret)
	conn := []string{"--server", hs.URL, "--ca", ca}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return runPack(t, append(args, conn...)...)
	}
	if _, errOut, code := run("upgrade", "--all", "--target", "1.5.0", "--yes"); code != 0 {
		t.Fatalf("upgrade: exit %d: %s", code, errOut)
	}
	srv.Schedule(ctx)
	o := checkin()
	if o == nil {
		t.Fatal("no order")
	}
	_, errOut, code := run("deployments", "retry", o.ID)
	if code != 1 || !strings.Contains(errOut, "deployment "+o.ID+" is requested: only a stuck or failed deployment can be retried") {
		t.Fatalf("retry of one in progress: exit %d: %s", code, errOut)
	}
	_, errOut, code = run("deployments", "cancel", o.ID)
	if code != 1 || !strings.Contains(errOut, "only a stuck deployment can be cancelled") {
		t.Fatalf("cancel of one in progress: exit %d: %s", code, errOut)
	}

	clock.add(time.Hour)
	srv.Schedule(ctx)
	out, errOut, code := run("deployments", "retry", o.ID)
	if code != 0 || out != "deployment "+o.ID+" retried as d-2 (pending)\n" {
		t.Fatalf("retry: exit %d: %q %s", code, out, errOut)
	}
	checkin() // back online
	srv.Schedule(ctx)
	o2 := checkin()
	if o2 == nil || o2.ID != "d-2" {
		t.Fatalf("order after the retry: %+v", o2)
	}
	clock.add(time.Hour)
	srv.Schedule(ctx)
	out, errOut, code = run("deployments", "cancel", "d-2", "--json")
	var d protocol.Deployment
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d.ID != "d-2" || d.State != protocol.StateCancelled {
		t.Fatalf("cancel --json: exit %d: %q %s", code, out, errOut)
	}
	if _, errOut, code := run("deployments", "retry"); code != 2 || !strings.Contains(errOut, "accepts 1 arg") {
		t.Errorf("retry without an id: exit %d: %s", code, errOut)
	}
}
