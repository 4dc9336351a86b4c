//go:build unix

package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/pgtest"
	"github.com/moltfleet/molt/store"
)

// A follower takes the lease at once when the leader releases it, and
// within about the TTL when the leader stops renewing (killed).
func TestElectorTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	db := openDB(t)
	const ttl = time.Second
	a := &Elector{DB: db, ID: "a", Address: "https://a", TTL: ttl}
	b := &Elector{DB: db, ID: "b", Address: "https://b", TTL: ttl}
	ctx := context.Background()
	la, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	holdCtx, stopHold := context.WithCancel(ctx)
	held := make(chan error, 1)
	go func() { held <- a.Hold(holdCtx, la) }()

	got := make(chan store.Lease, 1)
	go func() {
		l, err := b.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case l := <-got:
		t.Fatalf("b took the lease a holds and renews: %+v", l)
	case <-time.After(3 * ttl):
	}
	stopHold() // a shuts down: it releases the lease
	released := time.Now()
	var lb store.Lease
	select {
	case lb = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("b never took the released lease")
	}
	// b asks every fifth of the TTL (with jitter): it needs no expiry.
	if d := time.Since(released); d > ttl {
		t.Errorf("takeover after a release took %v, want under %v", d, ttl)
	}
	if lb.Token != la.Token+1 || lb.Holder != "b" {
		t.Fatalf("b's lease %+v after a's %+v", lb, la)
	}
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Fatalf("a's Hold: %v", err)
	}

	// b dies: it no longer renews. a takes over once the lease expired.
	start := time.Now()
	la, err = a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < ttl/2 || d > 2*ttl {
		t.Errorf("takeover of a dead leader's lease took %v, want about %v", d, ttl)
	}
	if la.Token != lb.Token+1 {
		t.Fatalf("token %d after %d", la.Token, lb.Token)
	}
}

// A leader whose lease was taken learns it at its next renewal.
func TestHoldNoticesTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	db := openDB(t)
	a := &Elector{DB: db, ID: "a", TTL: time.Second}
	la, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Another replica took it (as if a's lease had expired unnoticed).
	if _, err := db.Writer().Exec(`UPDATE leases SET holder = 'b', token = token + 1 WHERE name = ?`, LeaseName); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.Hold(context.Background(), la)
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Hold: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("noticed after %v", d)
	}
}

// A leader that loses the database stops leading before its lease
// expires in the database, so that no follower leads while it still
// believes it does.
func TestHoldStopsBeforeExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	c := pgtest.Start(t)
	db := openAt(t, c.CreateDB(t, "molt"))
	// The default TTL, whose margin (2 s) is what absorbs a loaded
	// machine's late timers in production; a shorter one here measured
	// the machine's load rather than Hold.
	const ttl = 5 * time.Second
	a := &Elector{DB: db, ID: "a", TTL: ttl}
	la, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() { held <- a.Hold(context.Background(), la) }()
	time.Sleep(ttl) // a few renewals
	c.Kill9()
	var stopped time.Time
	select {
	case err := <-held:
		stopped = time.Now()
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("Hold: %v", err)
		}
	case <-time.After(3 * ttl):
		t.Fatal("a kept leading without its database")
	}
	// The lease as the database kept it: the last renewal it committed.
	c.Start()
	var cur store.Lease
	for i := 0; ; i++ {
		if cur, err = db.CurrentLease(context.Background(), LeaseName); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !stopped.Before(cur.Expires) {
		t.Fatalf("a stopped leading at %v, after its lease expired at %v", stopped, cur.Expires)
	}
	if early := cur.Expires.Sub(stopped); early > ttl {
		t.Fatalf("a stopped %v before its lease expired: more than the TTL", early)
	}
}
