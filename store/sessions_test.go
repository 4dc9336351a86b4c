package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// hashesIn lists the hashes of table (sessions or signin_codes) in order.
func hashesIn(t *testing.T, db *DB, table string) []string {
	t.Helper()
	rows, err := db.query(context.Background(), `SELECT hash FROM `+table+` ORDER BY hash`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSessions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		ids := insertTokens(t, db, Token{Name: "ops", Role: "operator", Created: at(0)}, Token{Name: "old", Role: "admin", Created: at(0)})
		inTx(t, db, func(tx *Tx) error {
			if err := tx.SetTokenLastUsed(ids[0], at(time.Minute)); err != nil {
				return err
			}
			if err := tx.InsertSession("s-ops", ids[0], "csrf1", at(0), at(time.Hour)); err != nil {
				return err
			}
			return tx.InsertSession("s-old", ids[1], "csrf2", at(0), at(2*time.Hour))
		})
		want := Session{TokenID: ids[0], TokenName: "ops", Role: "operator", CSRF: "csrf1", Expires: at(time.Hour), LastUsed: at(time.Minute)}
		got, err := db.SessionByHash(ctx, "s-ops")
		want.ID = got.ID
		if err != nil || got != want || got.ID == 0 {
			t.Fatalf("session\n got %+v (%v)\nwant %+v", got, err, want)
		}
		if _, err := db.SessionByHash(ctx, "s-nobody"); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("an unknown session: %v", err)
		}
		// The session shows its token as it is now.
		inTx(t, db, func(tx *Tx) error { _, err := tx.RevokeToken(ids[1]); return err })
		if got, err := db.SessionByHash(ctx, "s-old"); err != nil || !got.Revoked || got.Role != "admin" {
			t.Fatalf("a revoked token's session: %+v, %v", got, err)
		}
		inTx(t, db, func(tx *Tx) error { return tx.DeleteSession(want.ID) })
		if _, err := db.SessionByHash(ctx, "s-ops"); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("a deleted session: %v", err)
		}
		if got := hashesIn(t, db, "sessions"); !slices.Equal(got, []string{"s-old"}) {
			t.Fatalf("sessions left %v", got)
		}
	})
}

func TestSigninCodes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		ids := insertTokens(t, db, Token{Name: "ops", Role: "operator", Created: at(0)})
		inTx(t, db, func(tx *Tx) error { return tx.InsertSigninCode("c1", ids[0], at(0), at(5*time.Minute)) })
		for _, tt := range []struct {
			hash string
			want bool
		}{{"c1", true}, {"c2", false}} {
			if known, err := db.SigninCodeKnown(ctx, tt.hash); err != nil || known != tt.want {
				t.Errorf("SigninCodeKnown(%s) = %v, %v", tt.hash, known, err)
			}
		}
		inTx(t, db, func(tx *Tx) error {
			tok, exp, err := tx.TakeSigninCode("c1")
			if err != nil || tok != ids[0] || !exp.Equal(at(5*time.Minute)) {
				t.Errorf("take: %d, %v, %v", tok, exp, err)
			}
			// A code is used once.
			if _, _, err := tx.TakeSigninCode("c1"); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("taken twice: %v", err)
			}
			return nil
		})
		if known, err := db.SigninCodeKnown(ctx, "c1"); err != nil || known {
			t.Fatalf("a used code is still known: %v, %v", known, err)
		}
	})
}

// A sweep deletes at most limit rows of each kind: expired sessions,
// sessions of revoked tokens and expired codes, and nothing live.
func TestSweepSessions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ids := insertTokens(t, db, Token{Name: "live", Role: "admin", Created: at(0)}, Token{Name: "gone", Role: "admin", Created: at(0)})
		now := at(time.Hour)
		inTx(t, db, func(tx *Tx) error {
			if _, err := tx.RevokeToken(ids[1]); err != nil {
				return err
			}
			for i := range 3 {
				// expired at now (expiry is exclusive), and live
				if err := tx.InsertSession(fmt.Sprintf("expired%d", i), ids[0], "", at(0), now.Add(-time.Duration(i)*time.Second)); err != nil {
					return err
				}
				if err := tx.InsertSession(fmt.Sprintf("revoked%d", i), ids[1], "", at(0), now.Add(time.Hour)); err != nil {
					return err
				}
				if err := tx.InsertSigninCode(fmt.Sprintf("expired%d", i), ids[0], at(0), now.Add(-time.Duration(i)*time.Second)); err != nil {
					return err
				}
			}
			if err := tx.InsertSession("live", ids[0], "", at(0), now.Add(time.Nanosecond)); err != nil {
				return err
			}
			return tx.InsertSigninCode("live", ids[0], at(0), now.Add(time.Nanosecond))
		})
		count := func(prefix string, hashes []string) int {
			n := 0
			for _, h := range hashes {
				if len(h) >= len(prefix) && h[:len(prefix)] == prefix {
					n++
				}
			}
			return n
		}
		for _, want := range []int{1, 0, 0} { // 3 of each, 2 swept at a time
			inTx(t, db, func(tx *Tx) error { return tx.SweepSessions(now, 2) })
			sessions, codes := hashesIn(t, db, "sessions"), hashesIn(t, db, "signin_codes")
			if count("expired", sessions) != want || count("revoked", sessions) != want || count("expired", codes) != want {
				t.Fatalf("after a sweep: sessions %v, codes %v; want %d of each kind", sessions, codes, want)
			}
			if count("live", sessions) != 1 || count("live", codes) != 1 {
				t.Fatalf("a live session or code was swept: %v, %v", sessions, codes)
			}
		}
	})
}
