//go:build unix

package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// storeProxy is a TCP proxy in front of the S3 store, on an address of its
// own that the server (and, with --artifact-redirect, the agents) take for
// the store. It can pace what the store sends, so that downloads are
// still under way when the store goes down; it goes down with the store
// (connections cut, new ones refused) and comes back on the same address;
// it counts the bytes the store sent and notes every request (the store
// speaks plain HTTP here), Range header included.
type storeProxy struct {
	tb      testing.TB
	addr    string
	backend string
	rate    atomic.Int64 // bytes a second per connection from the store; 0: unpaced
	sent    atomic.Int64 // bytes the store sent through the proxy

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	reqs  []storeRequest
}

// storeRequest is one request the store received.
type storeRequest struct {
	At     time.Time
	Method string
	Path   string
	Range  string // the Range header, "" when whole
}

// rangeStart is the first byte a "bytes=N-..." Range asks for (0 when
// there is none).
func (r storeRequest) rangeStart() int64 {
	spec, ok := strings.CutPrefix(r.Range, "bytes=")
	if !ok {
		return 0
	}
	first, _, _ := strings.Cut(spec, "-")
	n, _ := strconv.ParseInt(first, 10, 64)
	return n
}

func startStoreProxy(tb testing.TB, backend string) *storeProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &storeProxy{tb: tb, addr: ln.Addr().String(), backend: backend, conns: map[net.Conn]struct{}{}, ln: ln}
	go p.serve(ln)
	tb.Cleanup(p.down)
	return p
}

// down closes the listener and cuts every connection: clients see the
// store refuse connections, as when its host is down.
func (p *storeProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *storeProxy) up() {
	p.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.mu.Lock()
			p.ln = ln
			p.mu.Unlock()
			go p.serve(ln)
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			p.tb.Fatalf("store proxy: listen again on %s: %v", p.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requests are the requests noted so far.
func (p *storeProxy) requests() []storeRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]storeRequest(nil), p.reqs...)
}

func (p *storeProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.pass(c)
	}
}

// track registers c to be cut by down; false when the proxy is down.
func (p *storeProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *storeProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *storeProxy) pass(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.backend, time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { p.requestsTo(up, c); done <- struct{}{} }()
	go func() { p.paced(c, up); done <- struct{}{} }()
	<-done
}

// requestsTo copies the client's bytes to the store as they come, and
// reads the requests among them.
func (p *storeProxy) requestsTo(up io.Writer, c io.Reader) {
	br := bufio.NewReader(io.TeeReader(c, up))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			// Not HTTP (or the end): pass the rest as it is.
			_, _ = io.Copy(io.Discard, br)
			return
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, storeRequest{At: time.Now(), Method: req.Method, Path: req.URL.Path, Range: req.Header.Get("Range")})
		p.mu.Unlock()
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
	}
}

// paced copies the store's bytes to the client, no faster than the
// proxy's rate.
func (p *storeProxy) paced(c io.Writer, up io.Reader) {
	buf := make([]byte, 32<<10)
	var (
		rate  int64
		start time.Time
		total int64 // bytes since start
	)
	for {
		k, err := up.Read(buf)
		if k > 0 {
			if _, werr := c.Write(buf[:k]); werr != nil {
				return
			}
			p.sent.Add(int64(k))
		}
		if err != nil {
			return
		}
		if r := p.rate.Load(); r != rate {
			rate, start, total = r, time.Now(), 0
		}
		total += int64(k)
		if rate > 0 {
			time.Sleep(time.Duration(total*int64(time.Second)/rate) - time.Since(start))
		}
	}
}
