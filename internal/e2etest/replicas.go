package e2etest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Replicas are molt serve processes on one PostgreSQL database, behind a
// TCP load balancer of the test's own.
type Replicas struct {
	tb      testing.TB
	Servers []*Server
	// Front is a Server that is not a process: the load balancer's
	// address with the first replica's CA and admin token, for the CLI
	// (Front.Molt, Front.OK...) and for hosts (Front.NewHost).
	Front *Server
	lb    *balancer
}

// StartReplicas starts n replicas of molt serve on the PostgreSQL
// database dsn and a load balancer in front of them. The first replica
// starts alone and leads; the others share its dev TLS certificate (one
// name behind the balancer, as in production) and follow.
func StartReplicas(tb testing.TB, n int, dsn string, o ServerOptions) *Replicas {
	tb.Helper()
	o.Store = dsn
	r := &Replicas{tb: tb}
	first := StartServer(tb, o)
	r.Servers = append(r.Servers, first)
	for i := 1; i < n; i++ {
		dir := tb.TempDir()
		s := &Server{tb: tb, o: o, bin: first.bin, Dir: dir, Data: filepath.Join(dir, "data"), Addr: FreeAddr(tb), follower: true}
		if err := CopyDir(filepath.Join(first.Data, "tls"), filepath.Join(s.Data, "tls")); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			s.Stop()
			if tb.Failed() {
				s.dumpLogs()
			}
		})
		s.Start()
		r.Servers = append(r.Servers, s)
	}
	var addrs []string
	for _, s := range r.Servers {
		addrs = append(addrs, s.Addr)
	}
	r.lb = startBalancer(tb, addrs)
	r.Front = &Server{tb: tb, o: o, bin: first.bin, Dir: first.Dir, Data: first.Data, Addr: r.lb.addr}
	return r
}

// Leader is the index of the replica that leads now (-1: none answers
// as leader).
func (r *Replicas) Leader() int {
	for i, s := range r.Servers {
		if s.role() == "leader" {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a replica other than not leads and returns it.
func (r *Replicas) WaitLeader(not int, d time.Duration) int {
	r.tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if i := r.Leader(); i >= 0 && i != not {
			return i
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.tb.Fatalf("no replica but %d leads after %v", not, d)
	return -1
}

// role is what the replica's /healthz says it is: leader, follower, or
// "" when it does not answer.
func (s *Server) role() string {
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		return ""
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: time.Second, Transport: tr}
	resp, err := c.Get(s.URL() + "/healthz")
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("X-Molt-Role")
}

// CopyDir copies the files of directory from (not its subdirectories)
// into to, made if missing, each with mode 0600 (a server's TLS files).
func CopyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	es, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// balancer spreads TCP connections over its backends in turn, skipping
// those that refuse them, as a load balancer's health checks would.
type balancer struct {
	addr     string
	backends []string
	mu       sync.Mutex
	next     int
	ln       net.Listener
}

func startBalancer(tb testing.TB, backends []string) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &balancer{addr: ln.Addr().String(), backends: backends, ln: ln}
	go b.serve()
	tb.Cleanup(func() { ln.Close() })
	return b
}

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.pass(c)
	}
}

func (b *balancer) pass(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	start := b.next
	b.next++
	b.mu.Unlock()
	var up net.Conn
	for i := range b.backends {
		a := b.backends[(start+i)%len(b.backends)]
		var err error
		if up, err = net.DialTimeout("tcp", a, time.Second); err == nil {
			break
		}
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}
