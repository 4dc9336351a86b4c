// Command exporter is an example molt workload to copy: a small monitoring
// agent that serves Prometheus metrics, does a periodic scan during which
// it holds upgrades back, and keeps a little state in its data directory
// so that it survives upgrades and rollbacks. It uses only the standard
// library and github.com/moltfleet/molt/workload.
//
//	exporter -listen 127.0.0.1:9464 -scan-every 60s -scan-for 10s
//
// It logs to stdout (the supervisor keeps it in
// logs/workload-exporter-<v>.log) and stops cleanly on SIGTERM or SIGINT
// (on Windows: CTRL_BREAK_EVENT, which Go delivers as os.Interrupt).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moltfleet/molt/workload"
)

// version is set at build time: go build -ldflags "-X main.version=1.5.0".
var version = "dev"

type config struct {
	listen     string
	listenFile string
	scanEvery  time.Duration
	scanFor    time.Duration
	dataDir    string
	failReady  bool
}

func main() {
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.LUTC)
	var cfg config
	var showVersion bool
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:9464", "address to serve /metrics and /healthz on")
	flag.StringVar(&cfg.listenFile, "listen-file", "", "read the address to listen on from this file (relative: to the data directory), overriding -listen: per-host configuration kept across upgrades")
	flag.DurationVar(&cfg.scanEvery, "scan-every", time.Minute, "pause between scans (0: no scans)")
	flag.DurationVar(&cfg.scanFor, "scan-for", 10*time.Second, "how long a scan takes")
	flag.StringVar(&cfg.dataDir, "data-dir", "", "where the state file lives (default: $MOLT_DATA_DIR, or the working directory outside molt)")
	flag.BoolVar(&cfg.failReady, "fail-ready", false, "never answer /metrics (to demonstrate a broken release and its rollback)")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if showVersion {
		fmt.Println("exporter", version)
		return
	}
	if cfg.dataDir == "" {
		cfg.dataDir = workload.DataDir()
	}
	if cfg.dataDir == "" {
		cfg.dataDir = "."
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Printf("exporter: %v", err)
		os.Exit(1)
	}
	log.Print("exporter: stopped")
}

// run serves until ctx ends, then stops the server and any scan.
func run(ctx context.Context, cfg config) error {
	e := &exporter{path: filepath.Join(cfg.dataDir, stateFile)}
	if err := e.load(); err != nil {
		return err
	}
	e.st.Starts++
	if err := e.save(); err != nil {
		return err
	}

	if cfg.listenFile != "" {
		a, err := readListenFile(cfg.listenFile, cfg.dataDir)
		if err != nil {
			return err
		}
		cfg.listen = a
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	if cfg.failReady {
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "not ready (-fail-ready)", http.StatusServiceUnavailable)
		})
	} else {
		mux.HandleFunc("/metrics", e.metrics)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("exporter %s: listening on %s, data in %s, start %d (workload %q, molt version %q)",
		version, ln.Addr(), cfg.dataDir, e.st.Starts, workload.Name(), workload.Version())

	if cfg.failReady {
		log.Print("exporter: -fail-ready: /metrics will never answer")
	} else if err := workload.Ready(); err != nil {
		// Only a "file" ready check needs it; with an http check the
		// answer of /metrics says ready. Keep serving either way.
		log.Printf("exporter: %v", err)
	}

	var wg sync.WaitGroup
	if cfg.scanEvery > 0 {
		wg.Go(func() { e.scanLoop(ctx, cfg.scanEvery, cfg.scanFor) })
	}
	select {
	case <-ctx.Done():
		log.Print("exporter: stopping")
	case err := <-served:
		return err
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	wg.Wait()
	return err
}

// readListenFile reads the address in file (one line), relative to dataDir
// unless absolute. A pack's args are the same on every host; a file in
// the data directory is where one host's own settings live.
func readListenFile(file, dataDir string) (string, error) {
	if !filepath.IsAbs(file) {
		file = filepath.Join(dataDir, file)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("-listen-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return "", fmt.Errorf("-listen-file: %w", err)
	}
	a := strings.TrimSpace(string(b))
	if a == "" || strings.ContainsAny(a, " \t\r\n") {
		return "", fmt.Errorf("-listen-file %s: want one address such as 127.0.0.1:9464, got %q", file, a)
	}
	return a, nil
}

// stateFile, in the data directory, survives upgrades and rollbacks.
const (
	stateFile    = "exporter-state.json"
	maxStateSize = 64 << 10
)

// state is what the exporter keeps across restarts.
type state struct {
	Starts   int       `json:"starts"`
	Scans    int       `json:"scans"`
	LastScan time.Time `json:"last_scan,omitzero"`
}

type exporter struct {
	path string

	mu       sync.Mutex
	st       state
	scrapes  int
	scanning bool
}

// load reads the state file; a missing one is a first start, and an
// unreadable one is logged and replaced (a workload must start anyway).
func (e *exporter) load() error {
	f, err := os.Open(e.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return err
	}
	if len(b) > maxStateSize {
		err = errors.New("larger than 64 KiB")
	} else {
		err = json.Unmarshal(b, &e.st)
	}
	if err != nil {
		log.Printf("exporter: %s: %v; starting afresh", e.path, err)
		e.st = state{}
	}
	return nil
}

// save writes the state file atomically (temp file, fsync, rename), so a
// kill or a power cut leaves the old state or the new one.
func (e *exporter) save() error {
	e.mu.Lock()
	b, err := json.Marshal(e.st)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(e.path), 0o750); err != nil {
		return err
	}
	tmp := e.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, e.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// scanLoop scans until ctx ends, waiting `every` after each scan (a
// ticker would start the next scan at once after a long one, leaving no
// window without a hold).
func (e *exporter) scanLoop(ctx context.Context, every, dur time.Duration) {
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.scan(ctx, dur)
			t.Reset(every)
		}
	}
}

// scan is the work that must not be interrupted by an upgrade: it holds
// molt for its duration. The hold carries this process's pid, so even a
// crash cannot leave it behind for long.
func (e *exporter) scan(ctx context.Context, dur time.Duration) {
	release, err := workload.Hold("exporter scan")
	if err != nil {
		log.Printf("exporter: scan without a hold: %v", err)
		release = func() error { return nil }
	}
	defer func() {
		if err := release(); err != nil {
			log.Printf("exporter: %v", err)
		}
	}()
	e.setScanning(true)
	defer e.setScanning(false)
	log.Print("exporter: scan started")
	select {
	case <-ctx.Done():
		log.Print("exporter: scan interrupted")
		return
	case <-time.After(dur):
	}
	e.mu.Lock()
	e.st.Scans++
	e.st.LastScan = time.Now().UTC()
	n := e.st.Scans
	e.mu.Unlock()
	if err := e.save(); err != nil {
		log.Printf("exporter: %v", err)
	}
	log.Printf("exporter: scan %d done", n)
}

func (e *exporter) setScanning(v bool) {
	e.mu.Lock()
	e.scanning = v
	e.mu.Unlock()
}

// metrics writes the Prometheus text format by hand: a handful of lines
// need no client library.
func (e *exporter) metrics(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.scrapes++
	st, scrapes, scanning := e.st, e.scrapes, e.scanning
	e.mu.Unlock()
	var b strings.Builder
	metric := func(name, typ, help string, value float64, labels string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s%s %g\n", name, help, name, typ, name, labels, value)
	}
	metric("exporter_build_info", "gauge", "The exporter's version.", 1,
		fmt.Sprintf(`{version=%q,workload_version=%q}`, version, workload.Version()))
	metric("exporter_scrapes_total", "counter", "Scrapes of /metrics since this process started.", float64(scrapes), "")
	metric("exporter_starts_total", "counter", "Starts of the exporter on this host, kept in its data directory across upgrades.", float64(st.Starts), "")
	metric("exporter_scans_total", "counter", "Scans completed on this host, kept in its data directory across upgrades.", float64(st.Scans), "")
	in := 0.0
	if scanning {
		in = 1
	}
	metric("exporter_scan_in_progress", "gauge", "1 while a scan runs (and holds upgrades back).", in, "")
	if !st.LastScan.IsZero() {
		metric("exporter_last_scan_timestamp_seconds", "gauge", "When the last scan completed.", float64(st.LastScan.Unix()), "")
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, b.String())
}
