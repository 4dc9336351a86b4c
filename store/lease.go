package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lease is a role (the scheduler) held by one replica until it expires.
// Expiry is in the database's clock, which replicas share; a holder
// counts its own deadline from before it asked (LeaseClock), so that it
// gives the role up before the database lets another take it.
type Lease struct {
	Name    string
	Holder  string // the holding replica's id
	Address string // where the holder serves (other replicas forward to it)
	Token   int64  // grows at each change of holder: the fencing token
	Expires time.Time
}

// ErrLeaseLost is returned when a lease is no longer held by who asks:
// another replica took it.
var ErrLeaseLost = errors.New("lease lost: another replica holds it")

// forUpdate locks the rows a lease statement reads until the transaction
// ends (PostgreSQL; SQLite's one writer already excludes the others).
// The fencing check's lock (share) is FOR KEY SHARE: a takeover's FOR
// UPDATE waits for it, but the holder's own renewal, which changes no key,
// does not. With FOR SHARE, a leader whose write transactions follow one
// another without a gap (a burst of check-ins) always held the row locked,
// its renewal waited behind them until its deadline, and it stepped down.
func (db *DB) forUpdate(share bool) string {
	if db.engine != Postgres {
		return ""
	}
	if share {
		return " FOR KEY SHARE"
	}
	return " FOR UPDATE"
}

// clock is the database's time in Unix nanoseconds: PostgreSQL's, shared
// by every replica whatever their own clocks say; the process's for
// SQLite, which one process uses.
func (t *Tx) clock() (int64, error) {
	if t.db.engine != Postgres {
		return time.Now().UnixNano(), nil
	}
	var us int64
	err := t.queryRow(`SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`).Scan(&us)
	return us * 1000, err
}

// AcquireLease takes lease name for holder, for ttl, when nobody holds it
// (never held, released, or expired) or holder already does (then it is
// renewed, same token). Otherwise it returns the lease as another holds
// it, and false.
func (db *DB) AcquireLease(ctx context.Context, name, holder, address string, ttl time.Duration) (Lease, bool, error) {
	var l Lease
	var held bool
	err := db.update(ctx, db.l, false, func(t *Tx) error {
		now, err := t.clock()
		if err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO leases (name, holder, token, acquired, expires) VALUES (?, '', 0, 0, 0) ON CONFLICT DO NOTHING`, name); err != nil {
			return err
		}
		var exp int64
		l.Name = name
		err = t.queryRow(`SELECT holder, address, token, expires FROM leases WHERE name = ?`+db.forUpdate(false), name).Scan(&l.Holder, &l.Address, &l.Token, &exp)
		if err != nil {
			return err
		}
		l.Expires = FromNanos(exp)
		if l.Holder != holder && exp > now {
			return nil // held by another
		}
		if l.Holder != holder {
			l.Token++
		}
		l.Holder, l.Address, l.Expires, held = holder, address, FromNanos(now+int64(ttl)), true
		_, err = t.exec(`UPDATE leases SET holder = ?, address = ?, token = ?, acquired = CASE WHEN token = ? THEN acquired ELSE ? END, expires = ? WHERE name = ?`,
			l.Holder, l.Address, l.Token, l.Token, now, Nanos(l.Expires), name)
		return err
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("lease %s: %w", name, err)
	}
	return l, held, nil
}

// RenewLease extends l by ttl from now; ErrLeaseLost when another took it.
func (db *DB) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	err := db.update(ctx, db.l, false, func(t *Tx) error {
		now, err := t.clock()
		if err != nil {
			return err
		}
		n, err := affected(t.exec(`UPDATE leases SET expires = ? WHERE name = ? AND holder = ? AND token = ?`, now+int64(ttl), l.Name, l.Holder, l.Token))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrLeaseLost
		}
		l.Expires = FromNanos(now + int64(ttl))
		return nil
	})
	return l, err
}

// ReleaseLease gives l up at once (a replica shutting down), so another
// takes it without waiting for it to expire.
func (db *DB) ReleaseLease(ctx context.Context, l Lease) error {
	return db.update(ctx, db.l, false, func(t *Tx) error {
		_, err := t.exec(`UPDATE leases SET expires = 0 WHERE name = ? AND holder = ? AND token = ?`, l.Name, l.Holder, l.Token)
		return err
	})
}

// CurrentLease is lease name as the database has it (zero when never
// held).
func (db *DB) CurrentLease(ctx context.Context, name string) (Lease, error) {
	l := Lease{Name: name}
	var exp int64
	err := db.queryRow(ctx, `SELECT holder, address, token, expires FROM leases WHERE name = ?`, name).Scan(&l.Holder, &l.Address, &l.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	l.Expires = FromNanos(exp)
	return l, err
}

// CheckLease fences t: it fails with ErrLeaseLost unless l's holder still
// holds it, and keeps it held until t ends (PostgreSQL: a share lock on
// the lease's row, which a takeover waits for). A holder's writes run
// this in their transaction, so none commits after another replica took
// the role.
func (t *Tx) CheckLease(l Lease) error {
	var one int
	err := t.queryRow(`SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ?`+t.db.forUpdate(true), l.Name, l.Holder, l.Token).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrLeaseLost
	}
	return err
}
