package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/replica"
	"github.com/moltfleet/molt/server"
	"github.com/moltfleet/molt/store"
)

// runReplica serves as one replica of a server on PostgreSQL: a follower
// that passes requests to the leader until it takes the leader's lease,
// then the server itself. A leader that loses its lease stops (exit 1):
// its service manager starts it again, as a follower.
func runReplica(ctx context.Context, out io.Writer, c serveConfig, opt server.Options, tlsConf *tls.Config, dbg debugListen, log *zap.Logger) error {
	adv, err := url.Parse(c.Advertise)
	if c.Advertise == "" || err != nil || adv.Scheme != "https" || adv.Host == "" {
		return cli.Exit(2, fmt.Errorf("--advertise %q: with --store postgres://, give the https://HOST:PORT URL the other replicas reach this one at", c.Advertise))
	}
	peers, err := replica.PeerTransport(c.TLSCert, c.PeerCA)
	if err != nil {
		return cli.Exit(2, err)
	}
	if c.Artifacts == "" {
		fmt.Fprintf(out, "warning: the packs' files are in %s, which only this replica has: replicas share them with --artifacts s3://...\n", filepath.Join(c.Data, "packs"))
	}
	db, err := store.Open(ctx, c.Store)
	if err != nil {
		return err
	}
	defer db.Close()
	id := replicaID()
	rlog := log.Named("replica").With(zap.String("replica", id))
	el := &replica.Elector{DB: db, ID: id, Address: adv.String(), Log: rlog}
	var lead atomic.Pointer[http.Handler] // this replica's server, once it leads
	fwd := &replica.Forwarder{DB: db, Self: id, Transport: peers, Log: rlog, Leading: func() http.Handler {
		if l := lead.Load(); l != nil {
			return *l
		}
		return nil
	}}
	// The front serves as a follower until this replica leads. Every
	// answer says which this replica is (X-Molt-Role); a follower answers
	// /healthz itself, being up.
	var h atomic.Pointer[http.Handler]
	var front http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerRole, "follower")
		if r.URL.Path == "/healthz" && r.Header.Get(replica.HeaderForwarded) == "" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"status\":\"ok\",\"role\":\"follower\"}\n")
			return
		}
		fwd.ServeHTTP(w, r)
	})
	h.Store(&front)
	hs := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }), tlsConf, log)
	// Every replica holds its agents' connections, and a leader also the
	// ones its followers pass on: raise the limit before serving; the
	// check against the enrolled agents is made once this replica leads.
	fdBefore, fdSoft, fdHard, fdOK := raiseFDLimit()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return cli.Exit(1, fmt.Errorf("listen: %w", err))
	}
	var dln net.Listener
	if dbg.addr != "" {
		if dln, err = dbg.listen(log); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(out, "listening on https://%s as replica %s (advertised as %s): following the leader until this replica leads\n", ln.Addr(), id, adv)
	rlog.Info("serving as a replica", zap.String("addr", ln.Addr().String()), zap.String("advertise", adv.String()), zap.String("version", buildinfo.Version))

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	var (
		mu  sync.Mutex
		srv *server.Server // set while leading
	)
	if dln != nil {
		serveDebug(g, gctx, dln)
	}
	g.Go(func() error {
		err := hs.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		lease, err := el.Acquire(gctx)
		if err != nil {
			return nil // stopping before it led
		}
		rlog.Info("leading", zap.Int64("token", lease.Token))
		fmt.Fprintf(out, "replica %s leads (lease token %d)\n", id, lease.Token)
		o := opt
		o.Fence = &lease
		s, err := server.New(gctx, o)
		if err != nil {
			return err
		}
		defer s.Close()
		mu.Lock()
		srv = s
		mu.Unlock()
		sh := s.Handler()
		var lh http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(headerRole, "leader")
			sh.ServeHTTP(w, r)
		})
		lead.Store(&lh)
		h.Store(&lh)
		if fdOK {
			msg, warn := fdCheck{before: fdBefore, soft: fdSoft, hard: fdHard, enrolled: s.AgentCount()}.message()
			fmt.Fprintln(out, msg)
			if warn {
				log.Warn("file descriptor limit below the enrolled agents", zap.Uint64("limit", fdSoft), zap.Uint64("hard", fdHard), zap.Int("enrolled", s.AgentCount()))
			}
		}
		if path, created, err := s.EnsureAdminToken(gctx); err != nil {
			return fmt.Errorf("admin token: %w", err)
		} else if created {
			abs, _ := filepath.Abs(path)
			fmt.Fprintf(out, "admin API token written to %s (mode 0600): use it with --token-file or MOLT_TOKEN\n", abs)
		}
		// Connections of answered idle check-ins come back here; it ends
		// with the HTTP server, in the outer group.
		g.Go(func() error {
			err := hs.Serve(s.Resumed())
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		})
		lg, lctx := errgroup.WithContext(gctx)
		lg.Go(func() error { return s.Run(lctx) })
		lg.Go(func() error {
			err := el.Hold(lctx, lease)
			if lctx.Err() != nil {
				return nil
			}
			rlog.Error("lost the lead", zap.Error(err))
			return fmt.Errorf("replica %s stops: %w (a restart makes it a follower)", id, err)
		})
		return lg.Wait()
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		}
		log.Info("shutting down")
		mu.Lock()
		if srv != nil {
			srv.Shutdown()
		}
		mu.Unlock()
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		cancelRun()
		return err
	})
	return g.Wait()
}

// headerRole says, on every answer of a replica, whether it leads.
const headerRole = "X-Molt-Role"

// replicaID names this process among the replicas: the host and a random
// part, new at each start.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
