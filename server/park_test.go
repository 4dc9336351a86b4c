package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// parkServer serves s as molt serve does: HTTPS on a loopback listener
// plus the Resumed listener, on one http.Server.
func parkServer(t *testing.T, s *Server) (url, caFile string) {
	t.Helper()
	cert := httptest.NewUnstartedServer(nil) // only for its test certificate
	cert.StartTLS()
	tlsConf := cert.TLS.Clone()
	caDER := cert.Certificate().Raw
	cert.Close()
	tlsConf.NextProtos = []string{"h2", "http/1.1"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler(), TLSConfig: tlsConf, ReadTimeout: 2 * time.Second}
	go hs.ServeTLS(ln, "", "")
	go hs.Serve(s.Resumed())
	t.Cleanup(func() {
		s.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		s.parking.Wait()
	})
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Wait until the Resumed listener is served: parking starts then.
	for !s.resumed.serving.Load() {
		time.Sleep(time.Millisecond)
	}
	return "https://" + ln.Addr().String(), caFile
}

type pollResult struct {
	resp   protocol.CheckinResponse
	held   int
	reused bool
	proto  string
	took   time.Duration
	err    error
}

func poll(hc *http.Client, url string, st protocol.Status) pollResult {
	var r pollResult
	body, _ := json.Marshal(protocol.CheckinRequest{Status: st, WaitSeconds: 60})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { r.reused = ci.Reused }})
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/agent/checkin", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.took, r.proto = time.Since(start), resp.Proto
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		return r
	}
	r.held, _ = strconv.Atoi(resp.Header.Get("Molt-Held-Ms"))
	r.err = json.Unmarshal(b, &r.resp)
	return r
}

// TestParkedPolls: idle HTTP/1.1 check-ins are parked (no goroutine holds
// them), answered when their time is up, at once when woken or on
// shutdown, and their connections carry the next check-ins.
func TestParkedPolls(t *testing.T) {
	e := newEnv(t)
	const n = 20
	var agents []*simAgent
	for i := 0; i < n; i++ {
		agents = append(agents, e.newAgent("p"+strconv.Itoa(i), "1.0.0"))
	}
	key, _ := testKey()
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), TrustedKeys: []pack.Key{key}, PollWait: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.agents, s.byCred = e.s.agents, e.s.byCred
	url, ca := parkServer(t, s)
	client := func(a *simAgent) *http.Client {
		hc, err := agent.NewHTTPClient(&config.Config{Server: url, CAFile: ca}, func() string { return a.cred })
		if err != nil {
			t.Fatal(err)
		}
		return hc
	}

	// The poll time passes: answered, then the same connection again.
	a := agents[0]
	hc := client(a)
	for i := 0; i < 3; i++ {
		r := poll(hc, url, a.st)
		if r.err != nil {
			t.Fatalf("check-in %d: %v", i, r.err)
		}
		if r.proto != "HTTP/1.1" || r.held < 350 || r.took < 350*time.Millisecond || r.resp.ServerTime.IsZero() {
			t.Fatalf("check-in %d: %s held %d ms, took %s: %+v", i, r.proto, r.held, r.took, r.resp)
		}
		if i > 0 && !r.reused {
			t.Errorf("check-in %d came on a new connection: the parked one was not served again", i)
		}
	}

	// Many at once: all parked, none held by a goroutine; a wake-up
	// answers its agent at once.
	s.opt.PollWait = 30 * time.Second
	results := make([]chan pollResult, n)
	for i, a := range agents {
		results[i] = make(chan pollResult, 1)
		hc := client(a)
		go func() { results[i] <- poll(hc, url, a.st) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		parked := 0
		for _, w := range s.waiters {
			if w.park != nil {
				parked++
			}
		}
		s.mu.Unlock()
		if parked == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d polls parked", parked, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.mu.Lock()
	s.notify(agents[1].id)
	s.mu.Unlock()
	if r := <-results[1]; r.err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("woken poll: %v after %s", r.err, time.Since(start))
	}

	// Shutdown answers every parked poll at once, with no orders.
	s.Shutdown()
	for i := range agents {
		if i == 1 {
			continue
		}
		select {
		case r := <-results[i]:
			if r.err != nil || len(r.resp.Orders) != 0 {
				t.Errorf("agent %d on shutdown: %v %+v", i, r.err, r.resp)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("agent %d: parked poll not answered on shutdown", i)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("answers took %s", time.Since(start))
	}
}

// TestHTTP2PollsHeld: an HTTP/2 check-in cannot be parked and is held the
// plain way, answered all the same.
func TestHTTP2PollsHeld(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("h2", "1.0.0")
	key, _ := testKey()
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), TrustedKeys: []pack.Key{key}, PollWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.agents, s.byCred = e.s.agents, e.s.byCred
	url, ca := parkServer(t, s)
	caPEM, _ := os.ReadFile(ca)
	pool := x509Pool(t, caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	body, _ := json.Marshal(protocol.CheckinRequest{Status: a.st})
	req, _ := http.NewRequest("POST", url+"/v1/agent/checkin", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.cred)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out protocol.CheckinResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.ProtoMajor != 2 || resp.Header.Get("Molt-Held-Ms") == "" {
		t.Fatalf("%s %d: %v", resp.Proto, resp.StatusCode, err)
	}
}

func x509Pool(t *testing.T, caPEM []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	return pool
}

// TestParkPipelined: a check-in followed at once by more data on the same
// connection cannot be parked (what follows cannot be handed back to
// net/http): it is answered at once and the connection closed.
func TestParkPipelined(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("pipe", "1.0.0")
	key, _ := testKey()
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), TrustedKeys: []pack.Key{key}, PollWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.agents, s.byCred = e.s.agents, e.s.byCred
	url, ca := parkServer(t, s)
	caPEM, _ := os.ReadFile(ca)
	conn, err := tls.Dial("tcp", url[len("https://"):], &tls.Config{RootCAs: x509Pool(t, caPEM), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body, _ := json.Marshal(protocol.CheckinRequest{Status: a.st})
	req := fmt.Sprintf("POST /v1/agent/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", a.cred, len(body), body)
	if _, err := conn.Write([]byte(req + "GET /v1/server HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer at once: %v", err)
	}
	var out protocol.CheckinResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection carried on after a pipelined check-in")
	}
}
