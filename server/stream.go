package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// Live updates: GET /v1/events/stream serves the event log as Server-Sent
// Events, for the console. It follows the log as the events long poll does,
// woken by the event hub after each commit and reading by sequence number:
// one writer commits events in sequence order, so a stream resumed from
// the last id it delivered (Last-Event-ID) misses nothing and repeats
// nothing, the events written while it was away included.

const (
	// maxStreams bounds the open streams: each holds a goroutine and a
	// connection for as long as a browser tab is open.
	maxStreams = 256
	// streamPage is how many events one read takes, so a stream resumed
	// far behind catches up in bounded steps.
	streamPage             = 500
	defaultStreamKeepalive = 15 * time.Second
	// streamWriteGrace is how long a write may block on a client that does
	// not read before the stream is given up.
	streamWriteGrace = 30 * time.Second
	// streamGap is the least time between two reads of one stream. Commits
	// come hundreds a second in a large run, each waking every stream;
	// reading at most ten times a second bounds what an open console costs
	// the database, and still looks live.
	streamGap = 100 * time.Millisecond
)

// streamGate counts the open streams, and the reads they made (which
// tests check the rate of).
type streamGate struct {
	open  atomic.Int32
	reads atomic.Int64
}

func (g *streamGate) enter() bool {
	if g.open.Add(1) > maxStreams {
		g.open.Add(-1)
		return false
	}
	return true
}

func (g *streamGate) leave() { g.open.Add(-1) }

// streamFilter is what one stream follows.
type streamFilter struct {
	after  int64 // the last sequence number already seen
	resume bool  // after was given (after_id or Last-Event-ID)
	ids    []int
	agent  string
	run    int64
}

// parseStreamFilter reads the query and Last-Event-ID, which wins over
// after_id: it is what a browser's EventSource sends when it reconnects.
func (s *Server) parseStreamFilter(r *http.Request) (streamFilter, error) {
	q := r.URL.Query()
	var f streamFilter
	after, field := q.Get("after_id"), "after_id"
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, field = v, "Last-Event-ID"
	}
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			return f, badRequest("%s: %q is not an event sequence number (the seq of the last event seen, e.g. 1042)", field, after)
		}
		f.after, f.resume = n, true
	}
	if v := q.Get("id"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) > protocol.MaxStreamEventIDs {
			return f, badRequest("id: %d event ids, at most %d", len(parts), protocol.MaxStreamEventIDs)
		}
		for _, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || protocol.EventName(n) == "" {
				return f, badRequest("id: %q is not an event id of the catalogue (ids like 264, comma-separated; docs/events.md lists them)", p)
			}
			f.ids = append(f.ids, n)
		}
	}
	if v := q.Get("agent"); v != "" {
		s.mu.Lock()
		a, err := s.findAgent(v)
		s.mu.Unlock()
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return f, badRequest("agent: %s (give an agent id like a-0f3c9a1b2c3d4e5f or a unique name)", ae.Msg)
			}
			return f, err
		}
		f.agent = a.ID
	}
	if v := q.Get("run"); v != "" {
		id, ok := parseID(v, "r-")
		if !ok {
			return f, badRequest("run: %q is not a run id like r-3", v)
		}
		f.run = id
	}
	return f, nil
}

func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request, _ caller) error {
	f, err := s.parseStreamFilter(r)
	if err != nil {
		return err
	}
	if !s.streams.enter() {
		return errf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "too many open event streams (at most %d): retry shortly", maxStreams)
	}
	defer s.streams.leave()
	ctx := r.Context()
	last, err := s.lastEventSeq(ctx)
	if err != nil {
		return err
	}
	// Without a resume point the stream starts at the newest event; a
	// resume point beyond it comes from another database (a restore) and
	// would skip the events about to be written.
	if !f.resume || f.after > last {
		f.after = last
	}
	keepalive := s.opt.StreamKeepalive
	if keepalive <= 0 {
		keepalive = defaultStreamKeepalive
	}
	// The server's ReadTimeout needs nothing: it ends with the request's
	// headers for a request without a body (the stream test holds one
	// past it); WriteTimeout is extended by each write.
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	start := time.Now()
	if sw, ok := w.(*statusWriter); ok {
		defer func() { sw.held = time.Since(start) }()
	}
	out := &sseWriter{w: w, rc: rc, window: keepalive + streamWriteGrace}
	// A write that failed tells of a client gone (or not reading): nothing
	// to answer or log.
	// A stream outlives its request's authentication: it is checked again
	// at each keepalive, so a revoked token or an ended session stops
	// receiving events within one.
	allowed := func() bool {
		_, err := s.authToken(r, protocol.RoleViewer)
		return err == nil
	}
	_ = s.followEvents(ctx, out, f, last, keepalive, allowed)
	return nil
}

// followEvents writes the hello and then every event after f.after that
// matches f, until the server shuts down, the client goes away or a write
// fails (its error is returned), or allowed says the caller no longer may
// read events. A read of the log that fails is logged
// and ends the stream: the client reconnects and resumes.
func (s *Server) followEvents(ctx context.Context, out *sseWriter, f streamFilter, last int64, keepalive time.Duration, allowed func() bool) error {
	// The hello carries the resume point as its id, so a browser that
	// reconnects before any event arrived resumes from it, not from the
	// events of its new connection.
	if err := out.message(f.after, protocol.StreamHelloEvent, protocol.StreamHello{ServerVersion: s.opt.Version, LastSeq: last}); err != nil {
		return err
	}
	if err := out.flush(); err != nil {
		return err
	}
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		wake := s.events.wait()
		read := time.Now()
		for {
			s.streams.reads.Add(1)
			evs, next, more, err := s.streamEvents(ctx, f, streamPage)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("event stream: read events", zap.Int64("after", f.after), zap.Error(err))
				}
				return nil
			}
			for _, e := range evs {
				if err := out.message(e.Seq, protocol.StreamEvent, e); err != nil {
					return err
				}
			}
			f.after = next
			if len(evs) > 0 {
				if err := out.flush(); err != nil {
					return err
				}
			}
			if !more {
				break
			}
			select {
			case <-s.closing:
				return nil
			case <-ctx.Done():
				return nil
			default:
			}
		}
		select {
		case <-wake:
			if gap := streamGap - time.Since(read); gap > 0 {
				select {
				case <-time.After(gap):
				case <-s.closing:
					return nil
				case <-ctx.Done():
					return nil
				}
			}
		case <-tick.C:
			if !allowed() {
				return nil
			}
			if err := out.comment("keepalive"); err != nil {
				return err
			}
			if err := out.flush(); err != nil {
				return err
			}
		case <-s.closing:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Server) lastEventSeq(ctx context.Context) (int64, error) { return s.st.LastEventSeq(ctx) }

// streamEvents reads up to limit events after f.after that match f. next
// is the sequence number read up to: past the last event returned, or,
// when the page was not full, the newest event, so events the filter
// passed over are not read again. more says a full page was read.
func (s *Server) streamEvents(ctx context.Context, f streamFilter, limit int) (evs []protocol.Event, next int64, more bool, err error) {
	// Every event up to the newest is committed (one writer, in sequence
	// order), so reading up to it misses none.
	hi, err := s.lastEventSeq(ctx)
	if err != nil || hi <= f.after {
		return nil, f.after, false, err
	}
	page, err := s.st.EventsThrough(ctx, store.EventFilter{IDs: f.ids, AgentID: f.agent, RunID: f.run}, f.after, hi, limit)
	if err != nil {
		return nil, f.after, false, err
	}
	evs = protocolEvents(page)
	if len(evs) == limit {
		return evs, evs[len(evs)-1].Seq, true, nil
	}
	return evs, hi, false, nil
}

// sseWriter frames Server-Sent Events. Data is JSON, which holds no raw
// line break, so nothing an event carries (a message, a field from an
// agent) can end a message early or forge another.
type sseWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	window time.Duration // write deadline from each write: above the keepalive
	buf    []byte
}

func (o *sseWriter) message(id int64, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b := append(o.buf[:0], "id: "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	o.buf = b
	return o.write(b)
}

func (o *sseWriter) comment(text string) error {
	return o.write([]byte(": " + text + "\n\n"))
}

// write extends the write deadline first: molt serve's WriteTimeout would
// otherwise end every stream after 10 minutes.
func (o *sseWriter) write(b []byte) error {
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.window))
	_, err := o.w.Write(b)
	return err
}

func (o *sseWriter) flush() error {
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.window))
	return o.rc.Flush()
}
