//go:build unix

// Package pgtest starts throwaway PostgreSQL clusters for tests: the real
// server from the operating system's packages (Debian: postgresql, its
// initdb and pg_ctl under /usr/lib/postgresql/VERSION/bin), run as an
// unprivileged user, listening on loopback and on a Unix socket of its
// own, and removed when the test ends. Tests that need one skip with one
// line when PostgreSQL is not installed, and fail instead in CI
// (internal/testtool).
//
//	c := pgtest.Start(t)                 // a new cluster, stopped and removed at the end of t
//	dsn := c.CreateDB(t, "molt")          // postgres://USER@127.0.0.1:PORT/molt?sslmode=disable
//	c.Stop(); c.Start()                   // a restart, same port and data
//	c.Kill9()                             // the postmaster killed; Start recovers
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/testtool"
)

// Cluster is one running PostgreSQL cluster of a test.
type Cluster struct {
	tb   testing.TB
	bin  string // the directory of initdb, pg_ctl, postgres
	dir  string // data/ and sock/ below it
	port int
	user string
	cred *syscall.Credential // nil: run as this process's user

	mu      sync.Mutex
	running bool
}

// Start initializes a cluster in a directory of its own and starts it.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	bin := binDir()
	if bin == "" {
		testtool.Missing(tb, "PostgreSQL not found (initdb, pg_ctl): apt-get install postgresql")
	}
	c := &Cluster{tb: tb, bin: bin, user: "molt"}
	// The server refuses to run as root; a root test runs it as the
	// postgres user the package made (or nobody), in a directory that
	// user can reach: TMPDIR may be private to root (CI's is 0700), so the
	// cluster lives in a directory of its own under /var/tmp, removed at
	// the end like the rest.
	base := ""
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		c.cred = cred
		base = "/var/tmp"
	}
	dir, err := os.MkdirTemp(base, "molt-pg-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	c.dir = dir
	tb.Cleanup(c.remove)
	for _, d := range []string{dir, c.dataDir(), c.sockDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		if c.cred != nil {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				tb.Fatalf("pgtest: %v", err)
			}
		}
	}
	c.port = freePort(tb)
	if out, err := c.run("initdb", "-D", c.dataDir(), "-U", c.user, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// fsync off: a test kills processes, never the machine, so what a
	// commit wrote to the operating system survives; synchronous_commit
	// stays on, so a kill -9 of the server loses nothing acknowledged.
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n"+
		"max_connections = 200\nshared_buffers = 32MB\n", c.port, c.sockDir())
	f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatalf("pgtest: postgresql.conf: %v", err)
	}
	c.Start()
	return c
}

// binDir finds initdb: the newest /usr/lib/postgresql/*/bin (Debian
// keeps it off PATH), else PATH.
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p)
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// unprivileged is the user a root test runs PostgreSQL as.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, fmt.Errorf("running as root and there is no postgres or nobody user to run PostgreSQL as")
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// run runs one of the cluster's programs as its user.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Port is the loopback TCP port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// User is the cluster's superuser (trusted on loopback, no password).
func (c *Cluster) User() string { return c.user }

// DSN is the URL of database db over loopback TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.user, c.port, db)
}

// CreateDB creates database name and returns its DSN.
func (c *Cluster) CreateDB(tb testing.TB, name string) string {
	tb.Helper()
	if out, err := c.run("createdb", "-h", c.sockDir(), "-p", strconv.Itoa(c.port), "-U", c.user, name); err != nil {
		tb.Fatalf("pgtest: createdb %s: %v\n%s", name, err, out)
	}
	return c.DSN(name)
}

// Start starts the cluster (again) and waits until it accepts
// connections.
func (c *Cluster) Start() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", c.logFile(), "-w", "-t", "60", "start"); err != nil {
		c.tb.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, c.logTail())
	}
	c.running = true
}

// Stop stops the cluster (fast shutdown: connections are closed).
func (c *Cluster) Stop() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		c.tb.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	// pg_ctl returns once postmaster.pid is gone, which the postmaster
	// removes a moment before it exits.
	deadline := time.Now().Add(20 * time.Second)
	for len(c.backends()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.running = false
}

// Kill9 kills the postmaster with SIGKILL, as a crash would; Start then
// recovers from the write-ahead log.
func (c *Cluster) Kill9() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	pid := c.postmasterPID()
	if pid <= 0 {
		c.tb.Fatalf("pgtest: no postmaster.pid in %s", c.dataDir())
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Its backends end once the postmaster is gone; the next start
	// refuses while any still holds the shared memory.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range c.backends() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	c.running = false
}

func (c *Cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// backends are the processes whose command line names this cluster's
// data directory's processes: postgres children keep their parent's
// environment, so they are found by their working directory.
func (c *Cluster) backends() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == c.dataDir() {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logFile())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// remove stops the cluster (killing it when a stop fails) and removes
// its directory.
func (c *Cluster) remove() {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running {
		if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
			c.tb.Logf("pgtest: pg_ctl stop: %v\n%s", err, out)
			if pid := c.postmasterPID(); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if c.tb.Failed() {
		c.tb.Logf("pgtest: the cluster's log:\n%s", c.logTail())
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.tb.Errorf("pgtest: remove %s: %v", c.dir, err)
	}
}
