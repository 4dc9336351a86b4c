package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEnrollTokens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if toks, err := db.EnrollTokens(ctx); err != nil || len(toks) != 0 {
			t.Fatalf("no tokens: %v, %v", toks, err)
		}
		want := []EnrollToken{
			{Name: "rack 2", Created: at(0), Expires: at(time.Hour), Uses: 3},
			{Name: "", Created: at(time.Second), Expires: at(24 * time.Hour), Uses: 1},
		}
		inTx(t, db, func(tx *Tx) error {
			for i, e := range want {
				id, err := tx.InsertEnrollToken(e.Name, "h-"+e.Name, e.Created, e.Expires, e.Uses)
				if err != nil {
					return err
				}
				want[i].ID = id
			}
			return nil
		})
		if want[0].ID >= want[1].ID {
			t.Fatalf("ids %d, %d are not ascending", want[0].ID, want[1].ID)
		}
		inTx(t, db, func(tx *Tx) error {
			for range 2 {
				if err := tx.UseEnrollToken(want[0].ID); err != nil {
					return err
				}
			}
			if ok, err := tx.RevokeEnrollToken(want[1].ID); err != nil || !ok {
				t.Errorf("revoke: %v, %v", ok, err)
			}
			if ok, err := tx.RevokeEnrollToken(want[1].ID + 100); err != nil || ok {
				t.Errorf("revoking a missing token: %v, %v", ok, err)
			}
			return nil
		})
		want[0].Used = 2
		want[1].Revoked = true
		got, err := db.EnrollTokens(ctx)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("enroll tokens\n got %+v (%v)\nwant %+v", got, err, want)
		}
		for _, w := range want {
			if got, err := db.EnrollTokenByHash(ctx, "h-"+w.Name); err != nil || got != w {
				t.Errorf("by hash: %+v, %v; want %+v", got, err, w)
			}
		}
		if _, err := db.EnrollTokenByHash(ctx, "h-nobody"); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("an unknown token: %v", err)
		}
	})
}
