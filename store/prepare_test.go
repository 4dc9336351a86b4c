package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A transaction holding the writer's connection (Update) that runs a
// statement for the first time must not wait for a Begin that is
// preparing noted statements: that Begin waits for the connection. Both
// used to wait for ever (a server's batch writer against its event
// pruning, once in a while after a restart, when nothing is prepared).
func TestBeginPreparingDoesNotBlockATransaction(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "molt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if !t.Failed() { // a deadlocked database cannot be closed
			db.Close()
		}
	}()
	ctx := context.Background()
	done := make(chan error, 1)
	began := make(chan error, 1)
	inTx := make(chan struct{})
	go func() {
		done <- db.Update(ctx, func(tx *Tx) error {
			// A statement seen for the first time: noted, run unprepared.
			if _, err := tx.exec(`UPDATE settings SET value = value WHERE key = 'a'`); err != nil {
				return err
			}
			close(inTx)
			// Meanwhile a Begin prepares it and waits for the connection.
			time.Sleep(300 * time.Millisecond)
			_, err := tx.exec(`UPDATE settings SET value = value WHERE key = 'b'`)
			return err
		})
	}()
	<-inTx
	go func() {
		tx, err := db.Begin()
		if err == nil {
			err = tx.Rollback()
		}
		began <- err
	}()
	for _, ch := range []chan error{done, began} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the transaction and Begin wait for each other")
		}
	}
}
