// Command testworkload stands in for an operator's workload in the
// supervisor's tests and benchmark: an HTTP service with /ready and /live
// whose failures are chosen by flags.
//
//	testworkload -listen 127.0.0.1:9100 [-ready-after 200ms] [-never-ready]
//	             [-crash-after 1s] [-unhealthy-after 1s] [-ignore-term] [-tag X]
//
// It appends what it does to $MOLT_HOME/testworkload.events ("unixnano pid
// name tag event"), so tests see starts, readiness and exits from outside,
// and counts its starts in $MOLT_DATA_DIR/starts (the data directory that
// survives versions).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve /ready and /live on")
	readyAfter := flag.Duration("ready-after", 0, "answer /ready 200 only after this long")
	neverReady := flag.Bool("never-ready", false, "never answer /ready 200")
	crashAfter := flag.Duration("crash-after", 0, "exit 3 this long after the start")
	unhealthyAfter := flag.Duration("unhealthy-after", 0, "answer /live 500 from this long after the start")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM and SIGINT")
	tag := flag.String("tag", "", "a word for the events file (the version)")
	flag.Parse()
	if *tag == "" {
		*tag = os.Getenv("MOLT_WORKLOAD_VERSION")
	}
	name := os.Getenv("MOLT_WORKLOAD")
	ev := func(what string) {
		f, err := os.OpenFile(filepath.Join(os.Getenv("MOLT_HOME"), "testworkload.events"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return
		}
		fmt.Fprintf(f, "%d %d %s %s %s\n", time.Now().UnixNano(), os.Getpid(), name, *tag, what)
		f.Close()
	}
	start := time.Now()
	ev("start")
	countStart()
	fmt.Printf("testworkload %s %s starting\n", name, *tag)

	sigs := make(chan os.Signal, 1)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		ev("crash")
		os.Exit(3)
	}
	var readyOnce atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if *neverReady || time.Since(start) < *readyAfter {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if !readyOnce.Swap(true) {
			ev("ready")
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/live", func(w http.ResponseWriter, r *http.Request) {
		if *unhealthyAfter > 0 && time.Since(start) >= *unhealthyAfter {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "serve:", err)
		}
	}()
	var crash <-chan time.Time
	if *crashAfter > 0 {
		crash = time.After(*crashAfter)
	}
	select {
	case <-crash:
		fmt.Fprintln(os.Stderr, "testworkload: crashing as asked")
		ev("crash")
		os.Exit(3)
	case s := <-sigs:
		ev("stop-" + strings.ToLower(s.String()))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ev("exit")
	}
}

// countStart adds one to $MOLT_DATA_DIR/starts.
func countStart() {
	dir := os.Getenv("MOLT_DATA_DIR")
	if dir == "" {
		return
	}
	p := filepath.Join(dir, "starts")
	b, _ := os.ReadFile(p)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	_ = os.WriteFile(p, []byte(strconv.Itoa(n+1)+"\n"), 0o644)
}
