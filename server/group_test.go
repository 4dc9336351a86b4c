package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// countEvents counts the events whose message is msg, in the database.
func countEvents(t *testing.T, e *env, msg string) int {
	t.Helper()
	evs, err := e.s.st.Events(context.Background(), store.EventPage{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Message == msg {
			n++
		}
	}
	return n
}

// TestChangesCommittedInGroups: changes that join the open batch before
// it is committed share one commit; a change that fails takes back its
// own writes and nothing of the others'; nothing is in the database
// before the commit.
func TestChangesCommittedInGroups(t *testing.T) {
	e := newEnv(t)
	s := e.s
	ev := func(msg string) func(w *writer) error {
		return func(w *writer) error { return w.event(event{ID: protocol.EvServerStarted, Msg: msg}) }
	}
	c0, ch0 := s.st.Commits(), s.st.Changes()
	mirrored := 0
	s.mu.Lock()
	wait1, err := s.changeGrouped(func(w *writer) error {
		w.then(func() { mirrored++ })
		return ev("group-one")(w)
	})
	if err != nil {
		t.Fatal(err)
	}
	if mirrored != 1 {
		t.Errorf("the change's mirrored state is applied %d times when it joined, want 1", mirrored)
	}
	boom := errors.New("boom")
	if _, err := s.changeGrouped(func(w *writer) error {
		if err := ev("group-failed")(w); err != nil {
			return err
		}
		w.then(func() { mirrored += 10 })
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("a failing change returned %v, want its error", err)
	}
	wait2, err := s.changeGrouped(ev("group-two"))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	if n := countEvents(t, e, "group-one"); n != 0 {
		t.Fatalf("a change is in the database before its batch is committed")
	}
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	if err := wait1(); err != nil {
		t.Fatal(err)
	}
	if c, ch := s.st.Commits()-c0, s.st.Changes()-ch0; c != 1 || ch != 2 {
		t.Errorf("%d commits holding %d changes, want 1 holding 2", c, ch)
	}
	for msg, want := range map[string]int{"group-one": 1, "group-two": 1, "group-failed": 0} {
		if n := countEvents(t, e, msg); n != want {
			t.Errorf("%d events %q, want %d", n, msg, want)
		}
	}
	if mirrored != 1 {
		t.Errorf("mirrored = %d: a failed change's mirror was applied", mirrored)
	}
	// A plain change commits before it returns, with what joined before.
	s.mu.Lock()
	wait3, err := s.changeGrouped(ev("group-three"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.change(context.Background(), ev("group-four"))
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if countEvents(t, e, "group-three") != 1 || countEvents(t, e, "group-four") != 1 {
		t.Error("a change returned before its batch was committed")
	}
	if err := wait3(); err != nil {
		t.Fatal(err)
	}
}

// TestCommitFailureStopsServer: a commit that fails leaves memory ahead of
// the database, so the server stops: Run returns the error and requests
// are answered 503.
func TestCommitFailureStopsServer(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.s.Run(ctx) }()
	e.s.mu.Lock()
	// A deferred foreign key, checked only at the commit, makes the
	// commit itself fail.
	err := e.s.change(context.Background(), func(w *writer) error {
		for _, q := range []string{
			`CREATE TEMP TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)`,
			`CREATE TEMP TABLE IF NOT EXISTS c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)`,
			`INSERT INTO c VALUES (5)`,
		} {
			if _, err := w.tx.Exec(q); err != nil {
				return err
			}
		}
		return nil
	})
	e.s.mu.Unlock()
	if err == nil {
		t.Fatal("the commit succeeded")
	}
	t.Logf("the change: %v", err)
	select {
	case err := <-ran:
		if err == nil {
			t.Fatal("Run returned nil after a failed commit")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run goes on after a failed commit")
	}
	resp, err := http.Get(e.hs.URL + "/v1/server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after a failed commit a request got %d, want 503", resp.StatusCode)
	}
	e.s.mu.Lock()
	err = e.s.change(context.Background(), func(w *writer) error { return nil })
	e.s.mu.Unlock()
	if err == nil {
		t.Error("a change was accepted after a failed commit")
	}
}
