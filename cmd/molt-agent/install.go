package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// serviceTimeout bounds one molt-supervisor service command.
const serviceTimeout = 2 * time.Minute

func newInstallCmd() *cobra.Command {
	var (
		dir, configPath, name, packPath string
		keys                            []string
		noService                       bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install molt on this host: lay out the home and start the supervisor's service",
		Long: `Install lays out an agent home for its first start, from the binaries
beside this molt-agent (itself and molt-supervisor, as unpacked from a
release) or from a signed pack (--pack, checked against --key, with the
pack's workloads for this platform):

  versions/<version>/molt-agent, molt-supervisor, workloads (from --pack), .valid (written last)
  bin/molt-supervisor      the service executable
  state/active.json        current = <version>
  agent.yaml               copied from --config, or a commented default (mode 0600)

then registers and starts the supervisor as an OS service
("<home>/bin/molt-supervisor install --start"), unless --no-service.

Running it again, or over an existing home, is safe: what is complete is
kept and said so; agent.yaml and the identity are never replaced. A home
that runs another version is refused as it is (use "molt-agent upgrade
--pack" to move it, with a trial and rollback).`,
		Example: `  # from an unpacked release, as root
  ./molt-agent install --config ./agent.yaml

  # a second agent on the same host, its own home and service
  ./molt-agent install --home /srv/molt-b --name molt-b

  # from a signed pack, without touching the service manager
  molt-agent install --home /tmp/h --pack molt-1.5.0.pack --key release.pub --no-service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if packPath == "" && len(keys) > 0 {
				return cli.Usage("--key goes with --pack")
			}
			h := home.New(dir)
			out := cmd.OutOrStdout()
			var cfg []byte
			if configPath != "" {
				b, err := readSmall(configPath)
				if err != nil {
					return fmt.Errorf("--config: %w", err)
				}
				cfg = b
			}
			o := agent.InstallOptions{Home: h, Platform: buildinfo.Platform(), Config: cfg}
			var err error
			var closeSrc func()
			if packPath != "" {
				closeSrc, err = fromPack(&o, packPath, keys, cfg)
			} else {
				closeSrc, err = fromBeside(&o)
			}
			if err != nil {
				return err
			}
			defer closeSrc()
			say(out, "installing molt %s into %s", o.Version, h.Dir)
			steps, err := agent.Install(o)
			for _, s := range steps {
				say(out, "  %-8s %-28s %s", s.Action, s.Path, s.Detail)
			}
			if err != nil {
				return err
			}
			if noService {
				say(out, "service: not installed (--no-service); run the supervisor with: %s run --home %s", h.SupervisorBinary(), h.Dir)
				return nil
			}
			return supervisorService(cmd.Context(), out, h, name, "install", "--start")
		},
	}
	homeFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "agent.yaml to install (only when the home has none)")
	f.StringVar(&name, "name", "", "service name (default molt-supervisor for the default home, else derived from --home)")
	f.BoolVar(&noService, "no-service", false, "lay out the home only; do not register or start a service")
	f.StringVar(&packPath, "pack", "", "install from this signed pack instead of the binaries beside molt-agent")
	f.StringArrayVar(&keys, "key", nil, "public key to verify --pack with (repeat; default trusted_keys of --config)")
	return cmd
}

// fromBeside installs this executable and the molt-supervisor next to it.
func fromBeside(o *agent.InstallOptions) (func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	sup := filepath.Join(filepath.Dir(exe), home.SupervisorExe+platform.ExeSuffix())
	if _, err := os.Stat(sup); err != nil {
		return nil, fmt.Errorf("no %s beside %s: install from an unpacked release, or use --pack", filepath.Base(sup), exe)
	}
	o.Version = buildinfo.Version
	o.Agent = agent.InstallFile{Open: func() (io.ReadCloser, error) { return os.Open(exe) }}
	o.Supervisor = agent.InstallFile{Open: func() (io.ReadCloser, error) { return os.Open(sup) }}
	return func() {}, nil
}

// fromPack verifies the pack and installs this platform's binaries from it.
func fromPack(o *agent.InstallOptions, path string, keySpecs []string, cfg []byte) (func(), error) {
	if len(keySpecs) == 0 && cfg != nil {
		if c, err := parseConfig(cfg); err == nil {
			keySpecs = c.TrustedKeys
		}
	}
	if len(keySpecs) == 0 {
		return nil, cli.Usage("--pack needs --key PUBLIC (or trusted_keys in --config)")
	}
	keys, err := pack.LoadTrustedKeys(keySpecs)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	r, err := pack.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := r.Verify(keys)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	arts, err := m.PlatformArtifacts(o.Platform)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o.Version = m.Version
	for role, dst := range map[string]*agent.InstallFile{pack.RoleAgent: &o.Agent, pack.RoleSupervisor: &o.Supervisor} {
		a, ok := arts[role]
		if !ok {
			r.Close()
			return nil, fmt.Errorf("%s: no %s for %s", path, role, o.Platform)
		}
		*dst = agent.InstallFile{SHA256: a.SHA256, Open: func() (io.ReadCloser, error) { return r.OpenArtifact(a) }}
	}
	for _, w := range m.PlatformWorkloads(o.Platform) {
		o.Workloads = append(o.Workloads, agent.InstallWorkload{Workload: w, Open: func(f spec.File) (io.ReadCloser, error) {
			return r.OpenArtifact(pack.WorkloadArtifact(o.Platform, w.Spec.Name, f))
		}})
	}
	return func() { r.Close() }, nil
}

// supervisorService runs "<home>/bin/molt-supervisor <verb> --home H
// [--name N] args..." with its output on out.
func supervisorService(ctx context.Context, out io.Writer, h home.Home, name, verb string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	argv := append([]string{verb, "--home", h.Dir}, args...)
	if name != "" {
		argv = append(argv, "--name", name)
	}
	c := exec.CommandContext(ctx, h.SupervisorBinary(), argv...)
	c.Stdout, c.Stderr = out, out
	say(out, "running %s %s", h.SupervisorBinary(), strings.Join(argv, " "))
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return cli.Exit(1, fmt.Errorf("molt-supervisor %s failed (exit %d); see above", verb, ee.ExitCode()))
		}
		return fmt.Errorf("molt-supervisor %s: %w", verb, err)
	}
	return nil
}

func newUninstallCmd() *cobra.Command {
	var (
		dir, name string
		purge     bool
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the supervisor's service and the home (logs and workload data are kept)",
		Long: `Uninstall stops and removes the supervisor's OS service for this home
("<home>/bin/molt-supervisor stop", then "uninstall"), then removes the home:
versions (the workloads' files too), state (the identity too), cache, bin and
agent.yaml. logs/ and data/ (the workloads' own state and configuration) stay
unless --purge is given.

It refuses a directory that does not look like a molt home, and a home whose
agent still runs.`,
		Example: `  molt-agent uninstall
  molt-agent uninstall --home /srv/molt-b --name molt-b --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := home.New(dir)
			out := cmd.OutOrStdout()
			if !agent.LooksLikeHome(h) {
				return fmt.Errorf("%s does not look like a molt home; nothing removed", h.Dir)
			}
			if _, err := os.Stat(h.SupervisorBinary()); err == nil {
				if err := supervisorService(cmd.Context(), out, h, name, "stop"); err != nil {
					say(out, "(continuing: %v)", err)
				}
				if err := supervisorService(cmd.Context(), out, h, name, "uninstall"); err != nil {
					return err
				}
			} else {
				say(out, "no %s: no service to remove", rel(h, h.SupervisorBinary()))
			}
			removed, err := agent.Uninstall(h, purge)
			for _, r := range removed {
				say(out, "  removed  %s", r)
			}
			if err != nil {
				return err
			}
			if purge {
				say(out, "removed %s", h.Dir)
				return nil
			}
			say(out, "kept %s (remove it with --purge)", h.LogsDir())
			if _, err := os.Stat(h.DataRoot()); err == nil {
				say(out, "kept %s, the workloads' data (remove it with --purge)", h.DataRoot())
			}
			return nil
		},
	}
	homeFlag(cmd, &dir)
	cmd.Flags().StringVar(&name, "name", "", "service name, as given to install (default derived from --home)")
	cmd.Flags().BoolVar(&purge, "purge", false, "remove logs/, the workloads' data/ and the home directory too")
	return cmd
}
