package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestAgentActionsWithoutHTTP: what the agent API's handlers do is a
// Server method a caller without HTTP can use, with the same refusals:
// enroll, check in (the long poll included), report, and the removal of
// a release.
func TestAgentActionsWithoutHTTP(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	ctx := context.Background()
	const base = "https://molt.test"
	refused := func(what string, err error, status int, code string) {
		t.Helper()
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != status || (code != "" && ae.Code != code) {
			t.Fatalf("%s: %v, want %d %s", what, err, status, code)
		}
	}

	st := protocol.Status{ProtocolVersion: protocol.Version, Fingerprint: "fp-h1", Name: "h1", Hostname: "h1",
		Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Supervised: true}
	_, err := e.s.Enroll(ctx, "molte_unknown", st)
	refused("enroll with an unknown token", err, 401, protocol.CodeEnrollToken)
	er, err := e.s.Enroll(ctx, e.enroll, st)
	if err != nil || er.AgentID == "" || er.Credential == "" {
		t.Fatalf("enroll: %+v, %v", er, err)
	}
	id := er.AgentID

	_, err = e.s.Checkin(ctx, "a-unknown", st, base)
	refused("check-in of an unknown agent", err, 401, protocol.CodeUnauthorized)
	clone := st
	clone.Fingerprint = "fp-other"
	_, err = e.s.Checkin(ctx, id, clone, base)
	refused("check-in from another machine", err, 409, protocol.CodeIdentityCloned)

	// An idle check-in waits; a newer check-in of the agent ends its wait.
	idle, err := e.s.Checkin(ctx, id, st, base)
	if err != nil || !idle.Waiting() || len(idle.Orders) != 0 || idle.Poll != 20*time.Millisecond {
		t.Fatalf("idle check-in: %+v, %v", idle, err)
	}
	newer, err := e.s.Checkin(ctx, id, st, base)
	if err != nil || !newer.Waiting() {
		t.Fatalf("newer check-in: %+v, %v", newer, err)
	}
	start := time.Now()
	if orders := e.s.HoldCheckin(ctx, idle, time.Minute); len(orders) != 0 || time.Since(start) > 30*time.Second {
		t.Fatalf("superseded poll: %v after %s, want no orders at once", orders, time.Since(start))
	}
	if orders := e.s.HoldCheckin(ctx, newer, 10*time.Millisecond); len(orders) != 0 {
		t.Fatalf("poll held out: %v", orders)
	}
	e.s.mu.Lock()
	_, parked := e.s.waiters[id]
	e.s.mu.Unlock()
	if parked {
		t.Fatal("a poll held out stays registered")
	}

	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"})
	e.schedule()
	ck, err := e.s.Checkin(ctx, id, st, base)
	o := upgradeOrder(ck.Orders)
	if err != nil || ck.Waiting() || o == nil || o.PackURL != base+"/v1/packs/2.0.0" {
		t.Fatalf("check-in with an order: %+v, %v", ck, err)
	}
	if orders := e.s.HoldCheckin(ctx, ck, time.Minute); upgradeOrder(orders) == nil {
		t.Fatalf("HoldCheckin of a check-in with orders: %v", orders)
	}

	_, _, err = e.s.Report(ctx, id, protocol.ReportRequest{OrderID: "x-1"})
	refused("report on no order", err, 404, "")
	at := e.clock.Now()
	rr, open, err := e.s.Report(ctx, id, protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading, Steps: []protocol.Step{{At: at, Name: "download"}}})
	if err != nil || !open || rr.State != protocol.StateDownloading {
		t.Fatalf("report downloading: %+v open=%v, %v", rr, open, err)
	}
	end := protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndSucceeded, Version: "2.0.0"}}
	if rr, open, err := e.s.Report(ctx, id, end); err != nil || !open || rr.State != protocol.StateSucceeded {
		t.Fatalf("report the end: %+v open=%v, %v", rr, open, err)
	}
	if rr, open, err := e.s.Report(ctx, id, end); err != nil || open || rr.State != protocol.StateSucceeded {
		t.Fatalf("report the end again: %+v open=%v, %v, want the end state, not open", rr, open, err)
	}
	_, _, err = e.s.Report(ctx, id, protocol.ReportRequest{OrderID: o.ID, Steps: []protocol.Step{{At: at, Name: "late"}}})
	refused("a new step after the end", err, 409, "")

	ck, err = e.s.Checkin(ctx, id, st, base)
	if err != nil || len(ck.Orders) != 1 || ck.Orders[0].Kind != protocol.OrderCleanup {
		t.Fatalf("check-in after the upgrade: %+v, %v, want a cleanup order", ck, err)
	}
	cl := protocol.ReportRequest{OrderID: ck.Orders[0].ID}
	if rr, open, err := e.s.Report(ctx, id, cl); err != nil || open || rr.State != protocol.StateRequested {
		t.Fatalf("cleanup report without its end: %+v open=%v, %v", rr, open, err)
	}
	cl.End = &protocol.End{Outcome: protocol.EndSucceeded}
	if rr, open, err := e.s.Report(ctx, id, cl); err != nil || open || rr.State != protocol.StateSucceeded {
		t.Fatalf("cleanup done: %+v open=%v, %v", rr, open, err)
	}

	refused("remove a release the policy pins", func() error {
		e.must("PUT", "/v1/settings/version.linux/amd64", protocol.RoleAdmin, protocol.SettingRequest{Value: "2.0.0"}, nil)
		return e.s.RemoveRelease(ctx, "2.0.0")
	}(), 409, "")
	if err := e.s.RemoveRelease(ctx, "1.0.0"); err != nil {
		t.Fatalf("remove 1.0.0: %v", err)
	}
	refused("remove a removed release", e.s.RemoveRelease(ctx, "1.0.0"), 404, "")
	if !e.hasEvent(protocol.EvReleaseRemoved, "") {
		t.Error("no release-removed event")
	}
}
