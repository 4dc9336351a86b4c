package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestEventStream: the hello, then events in order as they are committed,
// over HTTP/1.1 and HTTP/2, for longer than the server's read and write
// timeouts, with keepalives while nothing happens.
func TestEventStream(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			e := newStreamEnv(t, h2)
			e.newAgent("a", "1.0.0")
			last := e.lastSeq()
			st, code, pe := e.open(e.tokens[protocol.RoleViewer], "", nil)
			if code != 200 {
				t.Fatalf("%d %+v", code, pe)
			}
			if (st.resp.ProtoMajor == 2) != h2 {
				t.Fatalf("served over %s", st.resp.Proto)
			}
			h, id := st.hello()
			if h.ServerVersion != "test" || h.LastSeq != last || id != strconv.FormatInt(last, 10) {
				t.Fatalf("hello %+v id %q, want last_seq and id %d", h, id, last)
			}
			// Only new events: a.'s enrollment was before.
			e.newAgent("b", "1.0.0")
			want := e.events()
			for seq := last + 1; seq <= want[len(want)-1].Seq; seq++ {
				ev := st.event()
				if ev.Seq != seq || (seq == last+1 && (ev.ID != protocol.EvAgentEnrolled || ev.AgentID == "")) {
					t.Fatalf("event %+v, want seq %d", ev, seq)
				}
			}
			// Nothing from the network breaks the framing: a message that
			// holds an SSE message arrives as one event, whole.
			forged := "upgrade failed\n\ndata: x\r\nevent: hello\rid: 1\n"
			e.emitN(1, event{ID: protocol.EvUpgradeFailed, Msg: forged, Fields: map[string]string{"output": "\n\n: keepalive\n\nid: 99"}})
			for i := range 3 {
				e.emitN(1, event{ID: protocol.EvDeploymentProgress, Msg: fmt.Sprintf("step %d", i)})
			}
			ev := st.event()
			if ev.Message != forged || ev.Fields["output"] != "\n\n: keepalive\n\nid: 99" || ev.Seq != want[len(want)-1].Seq+1 {
				t.Fatalf("event %+v", ev)
			}
			for i := range 3 {
				if got := st.event(); got.Message != fmt.Sprintf("step %d", i) || got.Seq != ev.Seq+int64(i)+1 {
					t.Fatalf("event %d: %+v", i, got)
				}
			}
			// Past the read and write timeouts (300 ms): keepalives, then
			// an event still arrives.
			keepalives := 0
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				if m := st.next(); m.comment != "keepalive" {
					t.Fatalf("message %+v while idle", m)
				}
				keepalives++
			}
			if keepalives < 5 {
				t.Fatalf("%d keepalives in 1 s every %s", keepalives, testKeepalive)
			}
			e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "late"})
			if got := st.event(); got.Message != "late" {
				t.Fatalf("event after 1 s: %+v", got)
			}
		})
	}
}

func TestEventStreamFilters(t *testing.T) {
	e := newStreamEnv(t, false)
	a := e.newAgent("a", "1.0.0")
	b := e.newAgent("b", "1.0.0")
	from := e.lastSeq()
	for _, ev := range []event{
		{ID: protocol.EvUpgradeRequested, Agent: a.id, Run: 1, Msg: "a r-1"},
		{ID: protocol.EvUpgraded, Agent: a.id, Run: 1, Msg: "a r-1 done"},
		{ID: protocol.EvUpgradeRequested, Agent: b.id, Run: 2, Msg: "b r-2"},
		{ID: protocol.EvUpgradeFailed, Agent: b.id, Run: 2, Msg: "b r-2 failed"},
		{ID: protocol.EvRunEnded, Run: 1, Msg: "r-1 ended"},
		{ID: protocol.EvSettingChanged, Msg: "setting"},
	} {
		e.emitN(1, ev)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a r-1", "a r-1 done", "b r-2", "b r-2 failed", "r-1 ended", "setting"}},
		{"&id=264", []string{"a r-1", "b r-2"}},
		{"&id=706,%20707", []string{"a r-1 done", "b r-2 failed"}},
		{"&agent=" + a.id, []string{"a r-1", "a r-1 done"}},
		{"&agent=b", []string{"b r-2", "b r-2 failed"}},
		{"&run=r-1", []string{"a r-1", "a r-1 done", "r-1 ended"}},
		{"&run=r-2&id=707", []string{"b r-2 failed"}},
		{"&agent=a&run=r-2", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			st, code, pe := e.open(e.tokens[protocol.RoleViewer], fmt.Sprintf("?after_id=%d%s", from, tc.query), nil)
			if code != 200 {
				t.Fatalf("%d %+v", code, pe)
			}
			defer st.close()
			st.hello()
			var got []string
			for _, ev := range st.untilKeepalive() {
				got = append(got, ev.Message)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// What is refused, naming the field.
	many := strings.TrimSuffix(strings.Repeat("264,", protocol.MaxStreamEventIDs+1), ",")
	for _, tc := range []struct {
		query, lastID, want string
	}{
		{"?after_id=-1", "", "after_id"},
		{"?after_id=x", "", "after_id"},
		{"?after_id=5", "later", "Last-Event-ID"},
		{"?id=abc", "", "id:"},
		{"?id=99999", "", "id:"},
		{"?id=264,,706", "", "id:"},
		{"?id=" + many, "", "at most 100"},
		{"?agent=nobody", "", "agent: no agent"},
		{"?run=7", "", "run:"},
		{"?run=r-0", "", "run:"},
	} {
		t.Run("refused"+tc.query, func(t *testing.T) {
			hdr := http.Header{}
			if tc.lastID != "" {
				hdr.Set("Last-Event-ID", tc.lastID)
			}
			_, code, pe := e.open(e.tokens[protocol.RoleViewer], tc.query, hdr)
			if code != 400 || pe.Code != protocol.CodeBadRequest || !strings.Contains(pe.Error, tc.want) {
				t.Fatalf("%d %+v, want 400 naming %q", code, pe, tc.want)
			}
		})
	}
	waitStreams(t, e.s, 0)
}

// TestEventStreamResume: a browser that reconnects with Last-Event-ID gets
// every event written while it was away, in pages, once each, and the
// header wins over after_id.
func TestEventStreamResume(t *testing.T) {
	e := newStreamEnv(t, false)
	viewer := e.tokens[protocol.RoleViewer]
	st, _, _ := e.open(viewer, "", nil)
	_, helloID := st.hello()
	// A reconnect before any event resumes from the hello's id.
	st.close()
	waitStreams(t, e.s, 0) // the handler saw the client go
	e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "while away"})
	st, _, _ = e.open(viewer, "?after_id=0", http.Header{"Last-Event-ID": {helloID}})
	if _, id := st.hello(); id != helloID {
		t.Fatalf("hello id %q after resuming from %q", id, helloID)
	}
	if ev := st.event(); ev.Message != "while away" {
		t.Fatalf("first event after resuming: %+v", ev)
	}
	e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "seen"})
	seen := st.event()
	st.close()
	waitStreams(t, e.s, 0)
	// More than two pages while away, then more while catching up.
	n := 2*streamPage + 7
	e.emitN(n, event{ID: protocol.EvDeploymentProgress, Msg: "away"})
	st, _, _ = e.open(viewer, "", http.Header{"Last-Event-ID": {strconv.FormatInt(seen.Seq, 10)}})
	st.hello()
	next := seen.Seq + 1
	for i := range n {
		ev := st.event()
		if ev.Seq != next || ev.Message != fmt.Sprintf("away %d", i) {
			t.Fatalf("event %d after resuming: %+v, want seq %d", i, ev, next)
		}
		next++
		if i == 10 {
			e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "during catch-up"})
		}
	}
	if ev := st.event(); ev.Seq != next || ev.Message != "during catch-up" {
		t.Fatalf("after the catch-up: %+v, want seq %d", ev, next)
	}
	if m := st.next(); m.comment != "keepalive" {
		t.Fatalf("an event repeated: %+v", m)
	}
	// A resume point past the newest event is from another database: the
	// stream starts at the newest, so nothing written next is skipped.
	st.close()
	st, _, _ = e.open(viewer, fmt.Sprintf("?after_id=%d", next+1000), nil)
	if h, id := st.hello(); id != strconv.FormatInt(h.LastSeq, 10) || h.LastSeq != next {
		t.Fatalf("hello %+v id %q, want %d", h, id, next)
	}
	e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "after restore"})
	if ev := st.event(); ev.Message != "after restore" {
		t.Fatalf("event: %+v", ev)
	}
}

// TestEventStreamShutdown: a shutting-down server ends its streams at
// once (the browser reconnects to the next one), and refuses new ones.
func TestEventStreamShutdown(t *testing.T) {
	e := newStreamEnv(t, false)
	st, _, _ := e.open(e.tokens[protocol.RoleViewer], "", nil)
	st.hello()
	start := time.Now()
	e.s.Shutdown()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-st.msgs:
			if m.comment != "keepalive" {
				t.Fatalf("message %+v at shutdown", m)
			}
			continue
		case err := <-st.ended:
			if err != io.EOF {
				t.Fatalf("the stream ended with %v, want its end (EOF)", err)
			}
		case <-deadline:
			t.Fatal("the stream outlived the server's shutdown")
		}
		break
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the stream ended %s after the shutdown", took)
	}
	waitStreams(t, e.s, 0)
	if _, code, pe := e.open(e.tokens[protocol.RoleViewer], "", nil); code != 503 || pe.Code != protocol.CodeUnavailable {
		t.Fatalf("a stream while shutting down: %d %+v", code, pe)
	}
}

// TestEventStreamLimits: only so many streams at once (503 beyond, a slot
// freed when a client goes); a token is needed; the stream's life is not
// counted as request latency.
func TestEventStreamLimits(t *testing.T) {
	e := newStreamEnv(t, false)
	viewer := e.tokens[protocol.RoleViewer]
	for _, tok := range []string{"", "molt_not-a-token"} {
		if _, code, pe := e.open(tok, "", nil); code != 401 || pe.Code != protocol.CodeUnauthorized {
			t.Fatalf("token %q: %d %+v", tok, code, pe)
		}
	}
	// The other streams are counted, not opened: 256 connections would
	// only make the test slow.
	e.s.streams.open.Store(maxStreams - 1)
	st, code, pe := e.open(viewer, "", nil)
	if code != 200 {
		t.Fatalf("the last stream allowed: %d %+v", code, pe)
	}
	st.hello()
	if _, code, pe := e.open(viewer, "", nil); code != 503 || pe.Code != protocol.CodeUnavailable || !strings.Contains(pe.Error, "256") {
		t.Fatalf("one stream too many: %d %+v", code, pe)
	}
	time.Sleep(300 * time.Millisecond) // a stream's life, left out of its latency
	st.close()
	waitStreams(t, e.s, maxStreams-1)
	st, code, pe = e.open(viewer, "", nil)
	if code != 200 {
		t.Fatalf("after a stream ended: %d %+v", code, pe)
	}
	st.hello()
	st.close()
	waitStreams(t, e.s, maxStreams-1)
	e.s.streams.open.Store(0)
	req, _ := http.NewRequest("GET", e.hs.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`molt_http_request_duration_seconds_bucket{route="GET /v1/events/stream",code="2xx",le="0.25"} 2`,
		`molt_http_request_duration_seconds_bucket{route="GET /v1/events/stream",code="4xx",le="+Inf"} 2`,
		`molt_http_request_duration_seconds_bucket{route="GET /v1/events/stream",code="5xx",le="+Inf"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestEventStreamReadRate: commits one after another wake a stream each
// time, but it reads at most every streamGap, and still delivers every
// event in order.
func TestEventStreamReadRate(t *testing.T) {
	e := newStreamEnv(t, false)
	st, _, _ := e.open(e.tokens[protocol.RoleViewer], "", nil)
	st.hello()
	got := make(chan []protocol.Event, 1)
	const n = 60
	go func() {
		var evs []protocol.Event
		for len(evs) < n {
			m := <-st.msgs
			if m.comment == "" {
				var ev protocol.Event
				_ = json.Unmarshal([]byte(m.data), &ev)
				evs = append(evs, ev)
			}
		}
		got <- evs
	}()
	before := e.s.streams.reads.Load()
	start := time.Now()
	for i := range n {
		e.emitN(1, event{ID: protocol.EvDeploymentProgress, Msg: fmt.Sprint(i)})
		time.Sleep(5 * time.Millisecond)
	}
	var evs []protocol.Event
	select {
	case evs = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the events did not all arrive")
	}
	took := time.Since(start)
	for i, ev := range evs {
		if ev.Message != fmt.Sprint(i) || (i > 0 && ev.Seq != evs[i-1].Seq+1) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	reads := e.s.streams.reads.Load() - before
	// One read per streamGap, and one per keepalive tick.
	if most := int64(took/streamGap) + int64(took/testKeepalive) + 2; reads > most {
		t.Fatalf("%d reads for %d commits in %s, want at most %d", reads, n, took, most)
	}
}

// TestEventStreamHead: a HEAD gets the stream's headers and ends.
func TestEventStreamHead(t *testing.T) {
	e := newStreamEnv(t, false)
	req, _ := http.NewRequest("HEAD", e.hs.URL+"/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitStreams(t, e.s, 0)
}

// TestEventStreamAuthEnds: a stream opened with a session cookie works as
// with a token, and a stream ends when its token is revoked or its
// session ends.
func TestEventStreamAuthEnds(t *testing.T) {
	e := newStreamEnv(t, false)
	// ended waits for st's end; the events the ending wrote (token_revoked)
	// may come first.
	ended := func(t *testing.T, st *sseStream) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case <-st.msgs:
				continue
			case <-st.ended:
			case <-deadline:
				t.Fatal("the stream outlived its authentication")
			}
			return
		}
	}
	t.Run("token revoked", func(t *testing.T) {
		var tc protocol.TokenCreated
		e.must("POST", "/v1/tokens", protocol.RoleAdmin, protocol.TokenRequest{Role: protocol.RoleViewer, Name: "tail"}, &tc)
		st, code, pe := e.open(tc.Secret, "", nil)
		if code != 200 {
			t.Fatalf("%d %+v", code, pe)
		}
		st.hello()
		if m := st.next(); m.comment != "keepalive" {
			t.Fatalf("message %+v", m)
		}
		e.must("DELETE", "/v1/tokens/"+tc.Token.ID, protocol.RoleAdmin, nil, nil)
		ended(t, st)
	})
	t.Run("session ended", func(t *testing.T) {
		sess, cookie := e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleViewer]})
		st, code, pe := e.open("", "", http.Header{"Cookie": {protocol.SessionCookie + "=" + cookie}})
		if code != 200 {
			t.Fatalf("with the session cookie: %d %+v", code, pe)
		}
		st.hello()
		e.emitN(1, event{ID: protocol.EvSettingChanged, Msg: "seen by the session"})
		if ev := st.event(); ev.Message != "seen by the session" {
			t.Fatalf("event %+v", ev)
		}
		e.session(t, sreq{method: "DELETE", path: "/v1/session", cookie: cookie, csrf: sess.CSRF, wantStatus: 204})
		ended(t, st)
	})
	waitStreams(t, e.s, 0)
}
