package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/artifacts"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/server"
	"github.com/moltfleet/molt/store"
	"github.com/moltfleet/molt/updater/pack"
)

// serveConfig is the file --config names; flags given on the command line
// win over it.
type serveConfig struct {
	Listen    string `yaml:"listen"`
	Data      string `yaml:"data"`
	Store     string `yaml:"store"`
	Advertise string `yaml:"advertise"`
	Artifacts string `yaml:"artifacts"`
	// ArtifactRedirect is a duration ("15m"): agents download straight
	// from the artifact store with pre-signed URLs valid that long.
	ArtifactRedirect string   `yaml:"artifact_redirect"`
	PeerCA           string   `yaml:"peer_ca"`
	TLSCert          string   `yaml:"tls_cert"`
	TLSKey           string   `yaml:"tls_key"`
	TrustedKeys      []string `yaml:"trusted_keys"`
	PublicURL        string   `yaml:"public_url"`
	LogLevel         string   `yaml:"log_level"`
	LogFile          string   `yaml:"log_file"`
}

func loadServeConfig(path string) (serveConfig, error) {
	var c serveConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if len(b) > 1<<20 {
		return c, fmt.Errorf("config %s: larger than 1 MiB", path)
	}
	if err := config.Decode(b, &c); err != nil {
		var ke *config.KeyError
		if errors.As(err, &ke) {
			ke.File = path
			return c, ke
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func newServeCmd() *cobra.Command {
	var (
		configFile string
		c          serveConfig
		dev        bool
		pollWait   time.Duration
		dbg        debugListen
		memLimitMB int64
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control server",
		Long: `Run the molt control server: the agent protocol, the operator API,
the upgrade run scheduler, events, hooks and /metrics, over HTTPS.

State is kept in DATA/molt.db (SQLite, every change durable before it is
acknowledged), or in PostgreSQL with --store postgres://USER@HOST/DB (give
the password in PGPASSWORD, ~/.pgpass or the config file, not on the command
line); imported packs in DATA/packs/. On the first start an admin
API token is written to DATA/admin.token (mode 0600).

TLS: give a certificate and key (tls_cert/tls_key in the config file, or
--tls-cert/--tls-key), or use --dev to make a local CA and a certificate for
127.0.0.1, ::1 and localhost in DATA/tls/ (agents then trust DATA/tls/ca.pem).

Packs are imported only when signed by a key given with --trusted-key (a
minisign .pub file or an inline key; repeatable).

Replicas: several molt serve on one PostgreSQL database (--store) share
the work: one leads (it holds the scheduler's lease, keeps the state and
makes every change), the others pass each request to it, and one of them
takes over within seconds when the leader dies. Each replica names the URL
the others reach it at with --advertise. See docs/server.md, Replicas.

Artifacts: the packs' files are kept in DATA/packs, or with --artifacts
s3://BUCKET/PREFIX in an S3-compatible store (AWS S3, MinIO, Ceph, ...), which
replicas share. Agents download through the server (Range requests, as
always), or straight from the store with --artifact-redirect.

The config file (YAML) may set: listen, data, store, advertise, peer_ca,
artifacts, artifact_redirect, tls_cert, tls_key,
trusted_keys, public_url, log_level, log_file.`,
		Example: `  molt serve --dev --data ./molt-data --trusted-key release.pub
  molt serve --config /etc/molt/server.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				fc, err := loadServeConfig(configFile)
				if err != nil {
					return cli.Exit(2, err)
				}
				merge := func(flag string, dst *string, v string) {
					if !cmd.Flags().Changed(flag) && v != "" {
						*dst = v
					}
				}
				merge("listen", &c.Listen, fc.Listen)
				merge("data", &c.Data, fc.Data)
				merge("store", &c.Store, fc.Store)
				merge("advertise", &c.Advertise, fc.Advertise)
				merge("artifacts", &c.Artifacts, fc.Artifacts)
				merge("artifact-redirect", &c.ArtifactRedirect, fc.ArtifactRedirect)
				merge("peer-ca", &c.PeerCA, fc.PeerCA)
				merge("tls-cert", &c.TLSCert, fc.TLSCert)
				merge("tls-key", &c.TLSKey, fc.TLSKey)
				merge("public-url", &c.PublicURL, fc.PublicURL)
				merge("log-level", &c.LogLevel, fc.LogLevel)
				merge("log-file", &c.LogFile, fc.LogFile)
				if !cmd.Flags().Changed("trusted-key") {
					c.TrustedKeys = fc.TrustedKeys
				}
			}
			if err := dbg.check(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if memLimitMB > 0 {
				// A soft limit: the collector works harder (and shrinks idle
				// goroutine stacks more often) as the process nears it.
				debug.SetMemoryLimit(memLimitMB << 20)
			}
			return runServe(ctx, cmd, c, dev, pollWait, dbg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file")
	f.StringVar(&c.Data, "data", "molt-data", "data directory (database, packs, admin token)")
	f.StringVar(&c.Store, "store", "", "database: empty for DATA/molt.db (SQLite), or a postgres:// URL (pgx parameters, e.g. sslmode=verify-full)")
	f.StringVar(&c.Advertise, "advertise", "", "with --store postgres://: the https:// URL the other replicas reach this one at")
	f.StringVar(&c.PeerCA, "peer-ca", "", "with --store postgres://: a CA (PEM) the other replicas' certificates chain to, besides the system's and this replica's certificate")
	f.StringVar(&c.Artifacts, "artifacts", "", "where the packs' files are kept: empty for DATA/packs, or s3://BUCKET/PREFIX?endpoint=URL&region=R (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the instance's role)")
	f.StringVar(&c.ArtifactRedirect, "artifact-redirect", "", "with --artifacts s3://: send agents straight to the store with pre-signed URLs valid this long (e.g. 15m); default: this server serves the files")
	f.StringVar(&c.Listen, "listen", "127.0.0.1:8443", "address to listen on (host:port; port 0 picks one)")
	f.StringArrayVar(&c.TrustedKeys, "trusted-key", nil, "pack signing public key (file or inline); repeatable")
	f.BoolVar(&dev, "dev", false, "make and use a local development CA and certificate in DATA/tls")
	f.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate (PEM)")
	f.StringVar(&c.TLSKey, "tls-key", "", "TLS private key (PEM)")
	f.StringVar(&c.PublicURL, "public-url", "", "base URL agents reach this server at (default: the Host of each request)")
	f.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&c.LogFile, "log-file", "", "JSON log file, rotated (default: human-readable on stderr)")
	f.DurationVar(&pollWait, "poll-wait", 0, "long-poll wait for check-ins (default: the agents.poll-seconds setting)")
	_ = f.MarkHidden("poll-wait")
	f.Int64Var(&memLimitMB, "memory-limit", 0, "soft memory limit in MB for the Go runtime (0: none; GOMEMLIMIT also works)")
	f.StringVar(&dbg.addr, "debug-listen", "", "serve Go profiles (/debug/pprof/) without authentication on this loopback address, e.g. 127.0.0.1:6060 or localhost:6060")
	f.BoolVar(&dbg.allowRemote, debugAllowRemoteFlag, false, "let --debug-listen take an address other hosts can reach (anyone who reaches it reads the server's memory profiles)")
	return cmd
}

func runServe(ctx context.Context, cmd *cobra.Command, c serveConfig, dev bool, pollWait time.Duration, dbg debugListen) error {
	out := cmd.OutOrStdout()
	if os.Getenv("GOGC") == "" {
		// A long-poll server holds many small, mostly idle buffers per
		// agent; collecting at 50% growth instead of 100% trades a little
		// CPU for a third less memory (measured by scripts/bench-server.sh).
		debug.SetGCPercent(50)
	}
	log, closeLog, err := cli.NewLogger(cli.LogOptions{Level: c.LogLevel, File: c.LogFile, Console: c.LogFile != ""})
	if err != nil {
		return err
	}
	defer closeLog()
	keys, err := pack.LoadTrustedKeys(c.TrustedKeys)
	if err != nil {
		return cli.Exit(2, fmt.Errorf("--trusted-key: %w", err))
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// Two servers on one data directory would both schedule the same runs.
	lock, err := platform.LockProcess(filepath.Join(c.Data, "serve.lock"))
	if err != nil {
		return cli.Exit(1, fmt.Errorf("data directory %s is in use by another molt serve: %w", c.Data, err))
	}
	defer lock.Unlock()
	if dev {
		d, err := server.EnsureDevTLS(c.Data, time.Now())
		if err != nil {
			return fmt.Errorf("dev TLS: %w", err)
		}
		c.TLSCert, c.TLSKey = d.CertFile, d.KeyFile
		ca, _ := filepath.Abs(d.CAFile)
		fmt.Fprintf(out, "dev TLS: agents trust the CA %s (set ca_file: %s in agent.yaml, or --ca/MOLT_CA for molt)\ndev TLS: CA SHA-256 fingerprint %s\n", ca, ca, d.Fingerprint)
	}
	if c.Store != "" && !store.IsPostgres(c.Store) {
		return cli.Exit(2, fmt.Errorf("--store %q: want a postgres:// URL, or nothing for DATA/molt.db", c.Store))
	}
	tlsConf, err := server.TLSConfig(c.TLSCert, c.TLSKey)
	if err != nil {
		return cli.Exit(2, err)
	}
	var redirect time.Duration
	if c.ArtifactRedirect != "" {
		if redirect, err = time.ParseDuration(c.ArtifactRedirect); err != nil || redirect < time.Minute || redirect > 7*24*time.Hour {
			return cli.Exit(2, fmt.Errorf("--artifact-redirect %q: want a duration from 1m to 168h, e.g. 15m", c.ArtifactRedirect))
		}
	}
	art, err := artifacts.Open(ctx, c.Artifacts, c.Data)
	if err != nil {
		return cli.Exit(2, err)
	}
	if c.Artifacts != "" {
		fmt.Fprintf(out, "artifacts in %s\n", art)
	}
	opt := server.Options{
		DataDir: c.Data, Store: c.Store, TrustedKeys: keys, PublicURL: c.PublicURL, PollWait: pollWait,
		Log: log, Version: buildinfo.Version, Artifacts: art, ArtifactRedirect: redirect,
	}
	if store.IsPostgres(c.Store) {
		return runReplica(ctx, out, c, opt, tlsConf, dbg, log)
	}
	srv, err := server.New(ctx, opt)
	if err != nil {
		return err
	}
	defer srv.Close()
	tokPath, created, err := srv.EnsureAdminToken(ctx)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if created {
		abs, _ := filepath.Abs(tokPath)
		fmt.Fprintf(out, "admin API token written to %s (mode 0600): use it with --token-file or MOLT_TOKEN\n", abs)
	}
	if len(keys) == 0 {
		fmt.Fprintln(out, "warning: no --trusted-key: pack imports will be refused")
	}
	if before, soft, hard, ok := raiseFDLimit(); ok {
		msg, warn := fdCheck{before: before, soft: soft, hard: hard, enrolled: srv.AgentCount()}.message()
		fmt.Fprintln(out, msg)
		if warn {
			log.Warn("file descriptor limit below the enrolled agents", zap.Uint64("limit", soft), zap.Uint64("hard", hard), zap.Int("enrolled", srv.AgentCount()))
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return cli.Exit(1, fmt.Errorf("listen: %w", err))
	}
	hs := newHTTPServer(srv.Handler(), tlsConf, log)
	var dln net.Listener
	if dbg.addr != "" {
		if dln, err = dbg.listen(log); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(out, "listening on https://%s\n", ln.Addr())
	log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("data", c.Data), zap.String("version", buildinfo.Version))
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return srv.Run(gctx) })
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
		// Connections of answered idle check-ins come back here (see
		// server.Server.Resumed).
		err := hs.Serve(srv.Resumed())
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		}
		log.Info("shutting down")
		srv.Shutdown() // releases long polls, so Shutdown below does not wait for them
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		cancelRun()
		return err
	})
	return g.Wait()
}

// serveDebug serves the profiles on dln in g until ctx ends.
func serveDebug(g *errgroup.Group, ctx context.Context, dln net.Listener) {
	debugSrv := newDebugServer()
	g.Go(func() error {
		err := debugSrv.Serve(dln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-ctx.Done() // pprof handlers hold nothing worth a graceful stop
		return debugSrv.Close()
	})
}

// newHTTPServer is the server's HTTPS front.
func newHTTPServer(h http.Handler, tlsConf *tls.Config, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      10 * time.Minute, // above the long-poll wait; pack downloads extend it per request
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}
