package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// The event stream's test harness: a server over HTTPS and a client that
// reads Server-Sent Events as a browser's EventSource does.

// streamEnv is an env whose server is also served over HTTPS with read and
// write timeouts far below a stream's life, as molt serve's are below it.
type streamEnv struct {
	*env
	hs *httptest.Server
}

const testKeepalive = 50 * time.Millisecond

func newStreamEnv(t *testing.T, h2 bool) *streamEnv {
	e := newEnv(t)
	e.s.opt.StreamKeepalive = testKeepalive
	hs := httptest.NewUnstartedServer(e.s.Handler())
	hs.Config.ReadTimeout = 300 * time.Millisecond
	hs.Config.WriteTimeout = 300 * time.Millisecond
	hs.EnableHTTP2 = h2
	hs.StartTLS()
	t.Cleanup(func() {
		e.s.Shutdown() // ends the streams, which hs.Close waits for
		hs.Close()
	})
	return &streamEnv{env: e, hs: hs}
}

// emitN records n events in one commit.
func (e *streamEnv) emitN(n int, ev event) {
	e.t.Helper()
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	err := e.s.change(context.Background(), func(w *writer) error {
		for i := range n {
			ev := ev
			if n > 1 {
				ev.Msg = fmt.Sprintf("%s %d", ev.Msg, i)
			}
			if err := w.event(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *streamEnv) lastSeq() int64 {
	e.t.Helper()
	n, err := e.s.lastEventSeq(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// sseMsg is one message of a stream, or one comment.
type sseMsg struct {
	id, event, data string
	comment         string
}

type sseStream struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sseMsg
	ended  chan error // the read error that ended the stream
}

// open starts a stream; a status other than 200 is returned with its error
// body and no stream.
func (e *streamEnv) open(token, query string, hdr http.Header) (*sseStream, int, protocol.Error) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.hs.URL+"/v1/events/stream"+query, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer cancel()
		defer resp.Body.Close()
		var pe protocol.Error
		if err := json.NewDecoder(resp.Body).Decode(&pe); err != nil {
			e.t.Fatalf("status %d with a body that is not the JSON error shape: %v", resp.StatusCode, err)
		}
		return nil, resp.StatusCode, pe
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	st := &sseStream{t: e.t, resp: resp, cancel: cancel, msgs: make(chan sseMsg), ended: make(chan error, 1)}
	go st.read(ctx)
	e.t.Cleanup(st.close)
	return st, 200, protocol.Error{}
}

// read parses the stream as an EventSource does (fields until an empty
// line; lines starting with a colon are comments).
func (st *sseStream) read(ctx context.Context) {
	br := bufio.NewReader(st.resp.Body)
	var m sseMsg
	var data []string
	started := false
	send := func(m sseMsg) bool {
		select {
		case st.msgs <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			st.ended <- err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.ContainsRune(line, '\r') {
			st.ended <- fmt.Errorf("a raw CR in line %q", line)
			return
		}
		switch {
		case line == "":
			if started {
				m.data = strings.Join(data, "\n")
				if !send(m) {
					return
				}
			}
			m, data, started = sseMsg{}, nil, false
		case strings.HasPrefix(line, ":"):
			if !send(sseMsg{comment: strings.TrimSpace(line[1:])}) {
				return
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				m.id = value
			case "event":
				m.event = value
			case "data":
				data = append(data, value)
			default:
				st.ended <- fmt.Errorf("unknown field in line %q", line)
				return
			}
			started = true
		}
	}
}

func (st *sseStream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next returns the next message or comment.
func (st *sseStream) next() sseMsg {
	st.t.Helper()
	select {
	case m := <-st.msgs:
		return m
	case err := <-st.ended:
		st.t.Fatalf("the stream ended: %v", err)
	case <-time.After(5 * time.Second):
		st.t.Fatal("no message within 5 s")
	}
	return sseMsg{}
}

// event returns the next event, skipping keepalives; it checks the
// message's framing.
func (st *sseStream) event() protocol.Event {
	st.t.Helper()
	for {
		m := st.next()
		if m.comment == "keepalive" {
			continue
		}
		return st.decode(m)
	}
}

func (st *sseStream) decode(m sseMsg) protocol.Event {
	st.t.Helper()
	var ev protocol.Event
	if m.event != protocol.StreamEvent {
		st.t.Fatalf("message %+v, want an event", m)
	}
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		st.t.Fatalf("event data %q: %v", m.data, err)
	}
	if m.id != strconv.FormatInt(ev.Seq, 10) {
		st.t.Fatalf("message id %q for event seq %d", m.id, ev.Seq)
	}
	return ev
}

func (st *sseStream) hello() (protocol.StreamHello, string) {
	st.t.Helper()
	m := st.next()
	var h protocol.StreamHello
	if m.event != protocol.StreamHelloEvent || json.Unmarshal([]byte(m.data), &h) != nil {
		st.t.Fatalf("first message %+v, want the hello", m)
	}
	return h, m.id
}

// untilKeepalive returns the events before the next keepalive: a catch-up
// is written before the first keepalive can be.
func (st *sseStream) untilKeepalive() []protocol.Event {
	st.t.Helper()
	var out []protocol.Event
	for {
		m := st.next()
		if m.comment == "keepalive" {
			return out
		}
		out = append(out, st.decode(m))
	}
}

// waitStreams waits until n streams are open.
func waitStreams(t *testing.T, s *Server, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.streams.open.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", s.streams.open.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
