package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/supervisor/control"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
)

func newRunCmd() *cobra.Command {
	var (
		dir, configPath, logFile string
		labels                   []string
		o                        agent.Overrides
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent daemon (what the supervisor starts)",
		Long: `Run the agent in the foreground: load the configuration, make the host's
identity on the first start, tell the supervisor it is ready, check in with
the control server (when server: is set; without it the agent runs
local-only) and carry out upgrade orders and "molt-agent upgrade" requests.

Configuration comes from agent.yaml in the home (or --config), then the
environment, then flags; a later source wins for each key:

  key               environment              flag
  server            MOLT_SERVER              --server
  ca_file           MOLT_CA_FILE             --ca-file
  enrollment_token  MOLT_ENROLLMENT_TOKEN    (none: keep tokens off command lines)
  trusted_keys      MOLT_TRUSTED_KEYS (a,b)  --trusted-key (repeat)
  name              MOLT_NAME                --name
  labels            MOLT_LABELS (k=v,k=v)    --label k=v (repeat)
  cluster           MOLT_CLUSTER             --cluster
  log_level         MOLT_LOG_LEVEL           --log-level

Exit codes: 0 stopped, 11 switched to a staged version (the supervisor
starts it under trial), 12 the configuration is unusable (one line names
the key), 1 anything else.`,
		Example: `  # as the supervisor runs it
  molt-agent run --home /opt/molt

  # by hand, against a test server, with debug logs on the terminal
  MOLT_HOME=/tmp/h molt-agent run --server https://127.0.0.1:8443 --ca-file /tmp/ca.pem --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := agent.ParseLabels(labels)
			if err != nil {
				return cli.Usage("--label: %v", err)
			}
			o.Labels = l
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDaemon(ctx, home.New(dir), configPath, logFile, o)
		},
	}
	homeFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "agent.yaml to read (default <home>/agent.yaml; optional there, required when given)")
	f.StringVar(&o.Server, "server", "", "control server URL, e.g. https://molt.example.com:8443")
	f.StringVar(&o.CAFile, "ca-file", "", "PEM file to trust for the server's certificate")
	f.StringArrayVar(&o.TrustedKeys, "trusted-key", nil, "pack-signing public key file or inline key (repeat; replaces trusted_keys)")
	f.StringVar(&o.Name, "name", "", "agent name shown on the server (default the hostname)")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeat; replaces labels)")
	f.StringVar(&o.Cluster, "cluster", "", "cluster: agents of one cluster upgrade one at a time")
	f.StringVar(&o.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	f.StringVar(&logFile, "log-file", "", "also write JSON lines to this rotated file (stderr is kept by the supervisor in logs/agent-<version>.log)")
	return cmd
}

func runDaemon(ctx context.Context, h home.Home, configPath, logFile string, o agent.Overrides) error {
	path, required := configPath, configPath != ""
	if path == "" {
		path = h.ConfigPath()
	}
	cfg, src, err := agent.LoadConfig(path, required, os.Getenv, o)
	if err != nil {
		return cli.Exit(control.ExitBadConfig, err)
	}
	log, flush, err := cli.NewLogger(cli.LogOptions{Level: cfg.LogLevel, File: logFile, Console: true})
	if err != nil {
		return cli.Exit(control.ExitBadConfig, fmt.Errorf("log_level: %w", err))
	}
	defer flush()
	log = log.With(zap.String("version", buildinfo.Version))

	keys, err := pack.LoadTrustedKeys(cfg.TrustedKeys)
	if err != nil {
		return badConfig(fmt.Errorf("trusted_keys: %w", err))
	}
	if len(keys) == 0 {
		log.Warn("no trusted_keys in the configuration: every upgrade will be refused")
	}
	opts := agent.Options{
		Home: h, Config: cfg, ConfigFile: path, Log: log,
		SupervisorVersion: os.Getenv(control.EnvSupervisorVersion),
	}
	// The credential changes at enrollment; the client reads the daemon's
	// current one per request.
	var d *agent.Daemon
	credential := func() string {
		if d == nil {
			return ""
		}
		return d.Identity().Credential
	}
	var packClient *http.Client
	if cfg.Server != "" {
		if opts.Orders, packClient, err = newOrders(cfg, credential); err != nil {
			return badConfig(err)
		}
	}
	opts.Updater = agent.NewUpdater(updater.Options{
		Home: h, Keys: keys, HTTPClient: packClient, Logger: log.Named("updater"),
		ReserveBytes: int64(cfg.DiskReserveMB) << 20,
	})
	ch, err := control.FromEnv()
	if err != nil {
		return fmt.Errorf("control channel: %w", err)
	}
	if ch != nil {
		opts.Control = ch
		defer ch.Close()
	}
	if d, err = agent.New(opts); err != nil {
		return err
	}
	if src.File == "" {
		log.Info("no agent.yaml; running with defaults and the environment", zap.String("looked_for", path))
	}
	err = d.Run(ctx)
	switch {
	case errors.Is(err, agent.ErrSwitched):
		faults.Point("agent/before-exit-11")
		return cli.Exit(control.ExitUpgrade, nil)
	case err != nil:
		log.Error("agent stopped", zap.Error(err))
		return err
	}
	log.Info("agent stopped")
	return nil
}

// badConfig exits 12 with one line on stderr (which the supervisor keeps).
func badConfig(err error) error {
	return cli.Exit(control.ExitBadConfig, fmt.Errorf("%w: %w", agent.ErrConfig, err))
}
