package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/protocol"
)

// fakeEvents serves pages of events; a nil page is an outage.
type fakeEvents struct {
	pages   [][]protocol.Event
	queries []apiclient.EventQuery
	cancel  context.CancelFunc
}

func (f *fakeEvents) Events(ctx context.Context, q apiclient.EventQuery) (protocol.Events, error) {
	f.queries = append(f.queries, q)
	if len(f.pages) == 0 {
		f.cancel()
		return protocol.Events{Next: q.After}, nil
	}
	p := f.pages[0]
	f.pages = f.pages[1:]
	if p == nil {
		return protocol.Events{}, &apiclient.ConnectError{Addr: "x:1", Err: errors.New("connection refused")}
	}
	return protocol.Events{Events: p, Next: p[len(p)-1].Seq}, nil
}

func TestFollowEvents(t *testing.T) {
	ev := func(seq int64) protocol.Event { return protocol.Event{Seq: seq, ID: 264, At: gNow} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeEvents{pages: [][]protocol.Event{{ev(1), ev(2)}, nil, {ev(3)}}, cancel: cancel}
	var got []int64
	var warn bytes.Buffer
	since := gNow.Add(-time.Hour)
	sel := apiclient.EventQuery{Since: since, IDs: []int{264}, Agent: "web-1", Run: "r-3"}
	err := followEvents(ctx, f, sel, true, func(e protocol.Event) error { got = append(got, e.Seq); return nil }, &warn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2] != 3 {
		t.Fatalf("events %v", got)
	}
	if !f.queries[0].Since.Equal(since) || f.queries[0].Follow {
		t.Errorf("first query %+v: want since, no follow", f.queries[0])
	}
	if q := f.queries[1]; q.After != 2 || !q.Follow || !q.Since.IsZero() {
		t.Errorf("second query %+v: want after 2, follow", q)
	}
	// Every request keeps the selection (--id, --agent, --run).
	for i, q := range f.queries {
		if len(q.IDs) != 1 || q.IDs[0] != 264 || q.Agent != "web-1" || q.Run != "r-3" {
			t.Errorf("query %d %+v lost the selection", i, q)
		}
	}
	if !bytes.Contains(warn.Bytes(), []byte("cannot connect")) || !bytes.Contains(warn.Bytes(), []byte("reachable again")) {
		t.Errorf("warnings %q", warn.String())
	}

	// Without --follow an outage is an error.
	f = &fakeEvents{pages: [][]protocol.Event{nil}, cancel: func() {}}
	if err := followEvents(context.Background(), f, apiclient.EventQuery{}, false, func(protocol.Event) error { return nil }, &warn); err == nil {
		t.Fatal("no error for an unreachable server without --follow")
	}
}

// A bad --id is a usage error naming the flag, before any request.
func TestEventsIDFlag(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, v := range []string{"abc", "264,x", "0"} {
		_, errOut, code := runPack(t, "events", "--id", v, "--server", "https://127.0.0.1:1", "--token", "molt_x")
		if code != 2 || !strings.Contains(errOut, "--id: ") || !strings.Contains(errOut, "is not an event id") {
			t.Errorf("--id %s: exit %d %q, want 2 naming --id", v, code, errOut)
		}
	}
}
