package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Releases are recorded once each, listed by version with their
// platforms, and deleted one by one.
func TestReleases(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		list := func() []protocol.Release {
			t.Helper()
			rels, err := db.Releases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return rels
		}
		if rels := list(); rels == nil || len(rels) != 0 {
			t.Fatalf("at first %#v, want an empty list", rels)
		}
		r15 := protocol.Release{Version: "1.5.0", Released: runsT0, Floor: "1.2.0", Platforms: []string{"linux/amd64", "linux/arm64"}, Imported: runsT0.Add(time.Hour), Size: 1 << 33}
		r14 := protocol.Release{Version: "1.4.0", Released: runsT0.Add(-time.Hour), Platforms: []string{"linux/amd64"}, Imported: runsT0, Size: 10,
			Quarantined: []protocol.Quarantine{{Platform: "linux/amd64"}}}
		runsUpdate(t, db, func(tx *Tx) error {
			if err := tx.InsertRelease(r15); err != nil {
				return err
			}
			return tx.InsertRelease(r14)
		})
		if err := db.Update(ctx, func(tx *Tx) error { return tx.InsertRelease(r15) }); err == nil {
			t.Fatal("a release recorded twice")
		}
		r14.Quarantined = nil // not stored
		if got, want := list(), []protocol.Release{r14, r15}; !reflect.DeepEqual(got, want) {
			t.Fatalf("listed\n%+v\nwant\n%+v", got, want)
		}
		runsUpdate(t, db, func(tx *Tx) error { return tx.DeleteRelease("1.4.0") })
		runsUpdate(t, db, func(tx *Tx) error { return tx.DeleteRelease("0.9.0") })
		if got, want := list(), []protocol.Release{r15}; !reflect.DeepEqual(got, want) {
			t.Fatalf("after a delete\n%+v\nwant\n%+v", got, want)
		}
	})
}
