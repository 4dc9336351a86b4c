package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// One replica holds a lease at a time; another takes it once it expired
// or was released, with a greater token; the old holder can then neither
// renew it nor pass the fencing check.
func TestLease(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const ttl = 300 * time.Millisecond
		a, held, err := db.AcquireLease(ctx, "scheduler", "A", "https://a:8443", ttl)
		if err != nil || !held || a.Token != 1 || a.Holder != "A" {
			t.Fatalf("first acquire: %+v %v %v", a, held, err)
		}
		b, held, err := db.AcquireLease(ctx, "scheduler", "B", "https://b:8443", ttl)
		if err != nil || held || b.Holder != "A" || b.Address != "https://a:8443" {
			t.Fatalf("B took a held lease: %+v %v %v", b, held, err)
		}
		if a, err = db.RenewLease(ctx, a, ttl); err != nil {
			t.Fatal(err)
		}
		again, held, err := db.AcquireLease(ctx, "scheduler", "A", "https://a:8443", ttl)
		if err != nil || !held || again.Token != a.Token {
			t.Fatalf("the holder acquiring again: %+v %v %v (token was %d)", again, held, err, a.Token)
		}

		time.Sleep(ttl + 100*time.Millisecond)
		b, held, err = db.AcquireLease(ctx, "scheduler", "B", "https://b:8443", ttl)
		if err != nil || !held || b.Token != a.Token+1 {
			t.Fatalf("B after expiry: %+v %v %v", b, held, err)
		}
		if _, err := db.RenewLease(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("A renewed a lease B took: %v", err)
		}
		check := func(l Lease) error {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			return tx.CheckLease(l)
		}
		if err := check(a); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("A's fencing check: %v", err)
		}
		if err := check(b); err != nil {
			t.Fatalf("B's fencing check: %v", err)
		}
		cur, err := db.CurrentLease(ctx, "scheduler")
		if err != nil || cur.Holder != "B" || cur.Token != b.Token {
			t.Fatalf("current: %+v %v", cur, err)
		}
		if err := db.ReleaseLease(ctx, b); err != nil {
			t.Fatal(err)
		}
		a, held, err = db.AcquireLease(ctx, "scheduler", "A", "https://a:8443", ttl)
		if err != nil || !held || a.Token != b.Token+1 {
			t.Fatalf("A after B released: %+v %v %v", a, held, err)
		}
		if none, err := db.CurrentLease(ctx, "other"); err != nil || none.Holder != "" {
			t.Fatalf("a lease never held: %+v %v", none, err)
		}
	})
}

// A takeover waits for the holder's transaction that passed the fencing
// check: the holder's writes commit before another replica holds the
// role, never after.
func TestLeaseTakeoverWaitsForFencedWrite(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const ttl = 200 * time.Millisecond
		a, _, err := db.AcquireLease(ctx, "scheduler", "A", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.CheckLease(a); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl + 50*time.Millisecond) // A's lease has expired meanwhile
		got := make(chan Lease, 1)
		go func() {
			l, held, err := db.AcquireLease(ctx, "scheduler", "B", "", ttl)
			if err != nil || !held {
				t.Errorf("B: %+v %v %v", l, held, err)
			}
			got <- l
		}()
		select {
		case l := <-got:
			t.Fatalf("B took the lease while A's fenced transaction was open: %+v", l)
		case <-time.After(300 * time.Millisecond):
		}
		if _, err := tx.Exec(`INSERT INTO settings (key, value) VALUES ('by', 'A')`); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-got:
			if l.Token != a.Token+1 {
				t.Fatalf("B's token %d, want %d", l.Token, a.Token+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("B never took the lease")
		}
	})
}

// With a fence set, every write transaction first checks the lease: once
// another replica took it, none begins.
func TestFence(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		a, _, err := db.AcquireLease(ctx, "leader", "A", "", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		db.Fence(a)
		put := func() error {
			return db.Update(ctx, func(tx *Tx) error {
				_, err := tx.Exec(`INSERT INTO settings (key, value) VALUES ('k', 'v') ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
				return err
			})
		}
		if err := put(); err != nil {
			t.Fatalf("the holder's write: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		if _, held, err := db.AcquireLease(ctx, "leader", "B", "", time.Second); err != nil || !held {
			t.Fatalf("B: %v %v", held, err)
		}
		if err := put(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("a write after the takeover: %v", err)
		}
		if _, err := db.Begin(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("a batch after the takeover: %v", err)
		}
	})
}
