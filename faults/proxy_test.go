package faults

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startProxy runs a Proxy to target until the test ends.
func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, target)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return p
}

const body = 4 << 20

func bigServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4194304")
		w.Write([]byte(strings.Repeat("x", body)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches the body through the proxy with a fresh connection and
// returns how many bytes arrived and the error.
func get(p *Proxy) (int64, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.Addr() + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

func TestProxyForwardsAndCounts(t *testing.T) {
	p := startProxy(t, strings.TrimPrefix(bigServer(t).URL, "http://"))
	n, err := get(p)
	if err != nil || n != body {
		t.Fatalf("got %d bytes, %v", n, err)
	}
	st := p.Stats()
	if st.BytesDown < body || st.BytesDown > body+4096 || st.BytesUp == 0 || st.Cuts != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProxyTripCutsMidBody(t *testing.T) {
	p := startProxy(t, strings.TrimPrefix(bigServer(t).URL, "http://"))
	p.TripAt(1<<20, 0)
	n, err := get(p)
	if err == nil || n >= body {
		t.Fatalf("first fetch: %d bytes, %v; want a cut", n, err)
	}
	// What reached the client is less (a reset drops what was in
	// flight); what the proxy carried is the threshold and a piece.
	if st := p.Stats(); st.Cuts != 1 || st.TripsLeft != 0 || st.BytesDown < 1<<20 || st.BytesDown > 1<<20+32<<10 {
		t.Fatalf("stats %+v", st)
	}
	if n, err := get(p); err != nil || n != body {
		t.Fatalf("after the cut: %d bytes, %v", n, err)
	}
}

func TestProxyDownRefusesForAWhile(t *testing.T) {
	p := startProxy(t, strings.TrimPrefix(bigServer(t).URL, "http://"))
	p.Down(500 * time.Millisecond)
	if _, err := get(p); err == nil {
		t.Fatal("a fetch while down succeeded")
	}
	if st := p.Stats(); st.Refused == 0 {
		t.Fatalf("stats %+v: nothing refused", st)
	}
	time.Sleep(600 * time.Millisecond)
	if n, err := get(p); err != nil || n != body {
		t.Fatalf("after the down time: %d bytes, %v", n, err)
	}
}
