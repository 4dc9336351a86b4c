package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from its listener to a target address
// and misbehaves on demand, as a network between an agent and its server
// does: it cuts every open connection, refuses new ones for a while, and
// does either when the bytes it carried towards the client reach a
// threshold (so a cut lands in the middle of a download).
type Proxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	downUntil time.Time
	trips     []trip
	down      int64 // bytes carried target -> client
	up        int64 // bytes carried client -> target
	cuts      int
	refused   int
}

// trip is a cut armed for when the bytes towards the client reach at.
type trip struct {
	at   int64
	down time.Duration
}

// NewProxy forwards the connections ln accepts to target once Run runs.
func NewProxy(ln net.Listener, target string) *Proxy {
	return &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Run accepts and forwards until ctx ends; then it closes the listener
// and every connection.
func (p *Proxy) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		p.ln.Close()
	}()
	var wg sync.WaitGroup
	defer func() {
		p.CutAll()
		wg.Wait()
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		p.mu.Lock()
		refuse := time.Now().Before(p.downUntil)
		if refuse {
			p.refused++
		}
		p.mu.Unlock()
		if refuse {
			reset(c)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.forward(ctx, c)
		}()
	}
}

// forward copies both ways until either side closes or the connection is
// cut.
func (p *Proxy) forward(ctx context.Context, c net.Conn) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := d.DialContext(dctx, "tcp", p.target)
	cancel()
	if err != nil {
		reset(c)
		return
	}
	if !p.track(c, s) {
		reset(c)
		s.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		p.copy(s, c, false)
		done <- struct{}{}
	}()
	go func() {
		p.copy(c, s, true)
		done <- struct{}{}
	}()
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// track registers both ends of a new connection, unless the proxy went
// down since it was accepted.
func (p *Proxy) track(c, s net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Now().Before(p.downUntil) {
		return false
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	return true
}

// copy moves bytes from src to dst, counting them; towards the client
// (toClient) it fires the armed trips. Writes are in pieces of at most
// 16 KiB so a trip lands close to its threshold.
func (p *Proxy) copy(dst, src net.Conn, toClient bool) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			// Counted before the write, so that a client that has its
			// bytes sees them in Stats.
			p.count(int64(n), toClient)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}
			return
		}
	}
}

func (p *Proxy) count(n int64, toClient bool) {
	p.mu.Lock()
	if !toClient {
		p.up += n
		p.mu.Unlock()
		return
	}
	p.down += n
	var fire *trip
	if len(p.trips) > 0 && p.down >= p.trips[0].at {
		t := p.trips[0]
		p.trips = p.trips[1:]
		fire = &t
	}
	p.mu.Unlock()
	if fire != nil {
		p.Down(fire.down)
	}
}

// CutAll closes every open connection at once. The close is an orderly
// one: what the proxy passed on still reaches the client, then the
// connection ends in the middle of its response (a peer that went away),
// so the proxy's byte count is what the client got.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	if len(conns) > 0 {
		p.cuts++
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Down cuts every connection and refuses new ones for d (none when d is
// 0: a cut only).
func (p *Proxy) Down(d time.Duration) {
	p.mu.Lock()
	if until := time.Now().Add(d); until.After(p.downUntil) {
		p.downUntil = until
	}
	p.mu.Unlock()
	p.CutAll()
}

// TripAt arms a Down(down) for the moment the bytes carried towards the
// client reach at (counted since the proxy started). Trips fire in the
// order of their thresholds; arm them in increasing order.
func (p *Proxy) TripAt(at int64, down time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trips = append(p.trips, trip{at: at, down: down})
}

// Stats is what the proxy carried and did.
type Stats struct {
	BytesDown, BytesUp int64 // towards the client, towards the target
	Cuts               int   // CutAll calls that cut at least one connection
	Refused            int   // connections refused while down
	TripsLeft          int   // armed trips not fired yet
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{BytesDown: p.down, BytesUp: p.up, Cuts: p.cuts, Refused: p.refused, TripsLeft: len(p.trips)}
}

// reset closes c so that the peer sees a reset, not a clean end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
