package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Parked long polls. An idle fleet is mostly check-ins waiting for their
// poll time to pass. Held the plain way, each costs a goroutine parked in
// the handler, net/http's goroutine reading ahead for a disconnect, and the
// connection's read and write buffers: about 45 KiB per agent, of which
// goroutine stacks are nearly half. An idle HTTP/1.1 check-in is instead
// parked: the handler takes the connection from net/http (Hijack) and
// returns, so nothing runs and no buffer is held while it waits; a timer
// or the agent's wake-up answers it, and the connection goes back to the
// same http.Server through the Resumed listener, to carry the agent's next
// check-in as the keep-alive connection it was. HTTP/2 streams cannot be
// taken over and are held the plain way.

// waiter is one agent's long poll: either a goroutine blocked on ch, or a
// parked connection.
type waiter struct {
	ch   chan struct{}
	park *parkedPoll
}

// release ends the poll; the answer carries whatever orders wait then.
// Call with s.mu held, once per waiter (callers delete it from s.waiters).
func (w *waiter) release() {
	if w.park != nil {
		w.park.release()
		return
	}
	close(w.ch)
}

// parkedPoll is a check-in whose connection was taken over while it
// waits.
type parkedPoll struct {
	s     *Server
	a     *agentRec
	base  string
	poll  time.Duration // agents.poll-seconds, told to the agent
	conn  net.Conn
	since time.Time
	timer *time.Timer
	once  sync.Once
}

// release answers the poll from another goroutine: the answer takes
// s.mu, which notify's callers hold.
func (p *parkedPoll) release() {
	p.once.Do(func() {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.s.parking.Add(1)
		go func() {
			defer p.s.parking.Done()
			p.answer()
		}()
	})
}

func (p *parkedPoll) answer() {
	s := p.s
	s.mu.Lock()
	if w := s.waiters[p.a.ID]; w != nil && w.park == p {
		delete(s.waiters, p.a.ID)
	}
	orders := s.ordersFor(p.a, p.base)
	s.mu.Unlock()
	held := time.Since(p.since)
	// The same answer writeJSON gives a held check-in.
	resp := protocol.CheckinResponse{Orders: orders, Settings: protocol.AgentSettings{PollSeconds: int(p.poll / time.Second)}, ServerTime: s.clock.Now()}
	body, err := json.Marshal(resp)
	if err != nil {
		p.conn.Close()
		return
	}
	body = append(body, '\n')
	var b bytes.Buffer
	b.Grow(256 + len(body))
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nMolt-Held-Ms: ")
	b.WriteString(strconv.FormatInt(held.Milliseconds(), 10))
	b.WriteString("\r\nDate: ")
	b.WriteString(time.Now().UTC().Format(http.TimeFormat))
	fmt.Fprintf(&b, "\r\nContent-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	// The agent reads its answer at once; one that does not within the
	// deadline is gone.
	_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.conn.Write(b.Bytes()); err != nil {
		p.conn.Close()
		return
	}
	if c, ok := p.conn.(closeAfterWrite); ok {
		c.Close()
		return
	}
	_ = p.conn.SetWriteDeadline(time.Time{})
	s.resumed.give(p.conn)
}

// park takes over the connection of a check-in whose waiter wt is
// registered, for a long poll of up to hold. It reports false, having
// touched nothing, when the poll must be held the plain way (HTTP/2, no
// Resumed listener served, a connection net/http will not give up). Call
// without s.mu.
func (s *Server) park(w http.ResponseWriter, r *http.Request, wt *waiter, a *agentRec, base string, poll, hold time.Duration) bool {
	if r.ProtoMajor != 1 || !s.resumed.serving.Load() {
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	p := &parkedPoll{s: s, a: a, base: base, poll: poll, conn: conn, since: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	woken := s.waiters[a.ID] != wt
	select {
	case <-wt.ch:
		woken = true
	case <-s.closing:
		woken = true
	default:
	}
	if brw.Reader.Buffered() > 0 {
		// The agent sent more than its check-in (pipelining, which agents
		// do not do): what it sent cannot be handed back to net/http, so
		// answer now and let the connection go after.
		woken = true
		p.conn = closeAfterWrite{conn}
	}
	if woken {
		// An order, a newer check-in or shutdown came while the
		// connection changed hands: answer at once.
		if s.waiters[a.ID] == wt {
			delete(s.waiters, a.ID)
		}
		p.release()
		return true
	}
	wt.park = p
	p.timer = time.AfterFunc(hold, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		p.release()
	})
	return true
}

// closeAfterWrite is a connection that is closed instead of resumed.
type closeAfterWrite struct{ net.Conn }

// Resumed is the listener of connections whose parked long poll has been
// answered: serve it with the http.Server that serves the agents
// (go hs.Serve(srv.Resumed())), so each goes on as a keep-alive
// connection. Until it is served, no poll is parked.
func (s *Server) Resumed() net.Listener { return s.resumed }

// resumedListener hands answered connections back to http.Server.
type resumedListener struct {
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
	serving atomic.Bool
}

func newResumedListener() *resumedListener {
	return &resumedListener{ch: make(chan net.Conn, 256), done: make(chan struct{})}
}

func (l *resumedListener) Accept() (net.Conn, error) {
	l.serving.Store(true)
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *resumedListener) give(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *resumedListener) Close() error {
	l.once.Do(func() {
		l.serving.Store(false)
		close(l.done)
	})
	return nil
}

func (l *resumedListener) Addr() net.Addr { return resumedAddr{} }

type resumedAddr struct{}

func (resumedAddr) Network() string { return "resumed" }
func (resumedAddr) String() string  { return "resumed long polls" }
