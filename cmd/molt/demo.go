package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build, run and upgrade a small fleet on this machine, start to finish",
		Long: `Run the whole product on this machine, from a checkout of the repository,
in under a minute once molt is compiled:

  - build three releases, ` + demo.OldVersion + `, ` + demo.NewVersion + ` and ` + demo.BadVersion + `: molt-agent, molt-supervisor and
    the operator's own agent, examples/exporter (a small monitoring agent
    serving /metrics), each stamped with its release's version;
  - make a signing key and three signed packs, each carrying the exporter as
    workload "exporter" (its spec from a pack.yaml); ` + demo.BadVersion + `'s starts it with
    -fail-ready, so it never becomes ready (its molt-agent is healthy);
  - start "molt serve --dev" on a free port of 127.0.0.1;
  - lay out three agent homes from the ` + demo.OldVersion + ` pack, each exporter on its own
    port (data/exporter/listen): host-a and host-b run under molt-supervisor,
    which runs their exporters; host-c runs molt-agent by hand with no
    supervisor (and so no exporter);

then, with the molt CLI as an operator would type it:

  1. the agents enroll at ` + demo.OldVersion + `, their exporters serve /metrics; the releases
     are imported;
  2. an upgrade run to ` + demo.NewVersion + `, one agent at a time, with live progress: agent,
     exporter and (after the trials) supervisor go to ` + demo.NewVersion + `;
  3. a run to the broken ` + demo.BadVersion + `: its exporter never becomes ready, each supervisor
     rolls the whole version back by itself, the server shows the deployments
     rolled_back naming the workload, and the ` + demo.NewVersion + ` exporters serve again;
  4. the agents table and the upgrade history.

Every process (workloads included) is stopped at the end and the temporary
directory removed, unless --keep: then the fleet keeps running when the
story ends, with the web console's address and a one-time sign-in link,
until ^C; the directory (binaries, key, packs, server data, homes, logs)
stays, with the commands to start it again. ^C stops everything the demo
started; a second ^C kills what is still stopping.

It needs the go command (the one "go run" uses) and builds with the same
flags, so a warm build cache leaves only linking to do.`,
		Example: `  go run ./cmd/molt demo
  go run ./cmd/molt demo --keep --dir /tmp
  go run ./cmd/molt demo --verbose --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, flush, err := cli.NewLogger(cli.LogOptions{Level: o.LogLevel, Console: true})
			if err != nil {
				return err
			}
			defer flush()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hurry := make(chan struct{})
			go func() {
				<-ctx.Done()
				// A second interrupt while everything stops: kill instead.
				again := make(chan os.Signal, 1)
				signal.Notify(again, os.Interrupt, syscall.SIGTERM)
				defer signal.Stop(again)
				select {
				case <-again:
					close(hurry)
				case <-cmd.Context().Done():
				}
			}()
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			o.Hold = o.Keep
			o.Hurry, o.Log = hurry, log
			err = demo.Run(ctx, o)
			switch {
			case errors.Is(err, demo.ErrNotInRepository):
				return cli.Exit(2, err)
			case err != nil && ctx.Err() != nil && cmd.Context().Err() == nil:
				return cli.Exit(130, errors.New("interrupted"))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Keep, "keep", false, "leave the fleet running after the story (console, CLI) until ^C, then keep its directory")
	f.StringVar(&o.Dir, "dir", "", "make the demo's directory in `DIR` (default: the system's temporary directory)")
	f.BoolVar(&o.Verbose, "verbose", false, "show the server's, supervisors', agents' and exporters' logs as they are written")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level of the server, supervisors and agents (debug, info, warn, error)")
	return cmd
}
