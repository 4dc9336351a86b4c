package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"
)

// at is a fixed instant plus d, as stored (UTC, nanoseconds).
func at(d time.Duration) time.Time {
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(d)
}

// inTx runs fn in a committed transaction of db.
func inTx(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// insertTokens inserts tokens named by their hash and returns their ids.
func insertTokens(t *testing.T, db *DB, toks ...Token) []int64 {
	t.Helper()
	var ids []int64
	inTx(t, db, func(tx *Tx) error {
		for _, tok := range toks {
			id, err := tx.InsertToken(tok.Name, tok.Role, "h-"+tok.Name, tok.Created)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

func TestTokens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if toks, err := db.Tokens(ctx); err != nil || len(toks) != 0 {
			t.Fatalf("no tokens: %v, %v", toks, err)
		}
		if n, err := db.TokenCount(ctx); err != nil || n != 0 {
			t.Fatalf("count %d, %v", n, err)
		}
		want := []Token{
			{Name: "zed", Role: "admin", Created: at(0)},
			{Name: "abe", Role: "viewer", Created: at(time.Second)},
			{Name: "", Role: "operator", Created: at(2 * time.Second)},
		}
		ids := insertTokens(t, db, want...)
		if !(ids[0] < ids[1] && ids[1] < ids[2]) {
			t.Fatalf("ids %v are not ascending", ids)
		}
		for i := range want {
			want[i].ID = ids[i]
		}
		inTx(t, db, func(tx *Tx) error {
			if err := tx.SetTokenLastUsed(ids[1], at(time.Minute)); err != nil {
				return err
			}
			for _, id := range []int64{ids[2], ids[2]} { // revoked twice: found both times
				if ok, err := tx.RevokeToken(id); err != nil || !ok {
					t.Errorf("revoke %d: %v, %v", id, ok, err)
				}
			}
			if ok, err := tx.RevokeToken(ids[2] + 100); err != nil || ok {
				t.Errorf("revoking a missing token: %v, %v", ok, err)
			}
			return nil
		})
		want[1].LastUsed = at(time.Minute)
		want[2].Revoked = true

		got, err := db.Tokens(ctx)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("tokens\n got %+v (%v)\nwant %+v", got, err, want)
		}
		if n, err := db.TokenCount(ctx); err != nil || n != 3 {
			t.Fatalf("count %d, %v", n, err)
		}
		for _, tt := range []struct {
			hash  string
			want  Token
			found bool
		}{
			{"h-zed", want[0], true},
			{"h-abe", want[1], true},
			{"h-", want[2], true},
			{"h-nobody", Token{}, false},
		} {
			t.Run(tt.hash, func(t *testing.T) {
				tok, err := db.TokenByHash(ctx, tt.hash)
				if tt.found != (err == nil) || (!tt.found && !errors.Is(err, sql.ErrNoRows)) || tok != tt.want {
					t.Errorf("TokenByHash: %+v, %v", tok, err)
				}
				known, err := db.TokenKnown(ctx, tt.hash)
				if err != nil || known != tt.found {
					t.Errorf("TokenKnown: %v, %v", known, err)
				}
				inTx(t, db, func(tx *Tx) error {
					tok, err := tx.TokenByHash(tt.hash)
					if tt.found != (err == nil) || (!tt.found && !errors.Is(err, sql.ErrNoRows)) || tok != tt.want {
						t.Errorf("Tx.TokenByHash: %+v, %v", tok, err)
					}
					if tt.found {
						if tok, err := tx.Token(tt.want.ID); err != nil || tok != tt.want {
							t.Errorf("Tx.Token: %+v, %v", tok, err)
						}
					}
					return nil
				})
			})
		}
		inTx(t, db, func(tx *Tx) error {
			if _, err := tx.Token(ids[2] + 100); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("a missing token: %v", err)
			}
			return nil
		})
		// Hashes are unique.
		err = db.Update(ctx, func(tx *Tx) error {
			_, err := tx.InsertToken("again", "admin", "h-zed", at(0))
			return err
		})
		if err == nil {
			t.Fatal("a second token with the same hash was inserted")
		}
	})
}
