package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
)

func newPackBuildCmd() *cobra.Command {
	var (
		opts      pack.BuildOptions
		keyPath   string
		released  string
		platforms []string
		asJSON    bool
		pass      packPassphrase
	)
	cmd := &cobra.Command{
		Use:   "build --version V --bin-dir DIR --key SECRET --out FILE",
		Short: "Pack the binaries scripts/build.sh made into a signed pack",
		Long: `Packs molt-agent and molt-supervisor of every platform directory
(<goos>_<goarch>/) that "scripts/build.sh V DIR ..." wrote into DIR, or only
those named by --platform. A platform directory without both binaries is an
error. The host platform's binaries are run ("version --json") to confirm
they are version V; other platforms cannot be run here and are not checked.

Workloads (docs/workloads.md): every tree <goos>_<goarch>/workloads/<name>/
of DIR is packed with its spec from DIR/pack.yaml (or --workloads FILE). A
tree without a spec, a spec without its tree, a symbolic link or other
special file, a name with ".." or a backslash, a missing or non-executable
command and an unknown key in pack.yaml are errors. A file keeps 0755 when
its owner may execute it, else gets 0644; on windows/* a command without
".exe" finds the ".exe".

The pack gets manifest.json (version, release time, floor, each file's size
and SHA-256, the workloads' specs and files) signed by the secret key into
manifest.json.sig. It is written to a temporary file, verified, synced and
renamed: a failed build leaves no half-written pack behind.

Delta updates: each --delta-from names the pack of an earlier version. For
every file of this pack (binaries and workload files, per platform) that
the older pack has at the same path, a binary patch (bsdiff) from the old
file to the new one is added under deltas/ and named in the signed
manifest with its size and SHA-256 and the SHA-256 of the file it applies
to and of the file it makes. Files under 4 KiB, new files, and files whose
patch would not save half of them get none. An agent whose installed
version is one of these, with its file intact, downloads the patch instead
of the file; any other agent downloads the full file. The older pack's
files are checked against its manifest; its signature is not (it may be by
a retired key).`,
		Example: `  scripts/build.sh 1.5.0 dist linux/amd64 linux/arm64 windows/amd64
  molt pack build --version 1.5.0 --bin-dir dist --key molt.key --out molt-1.5.0.zip
  molt pack build --version 1.5.0 --bin-dir dist --key molt.key --floor 1.2.0 \
      --platform linux/amd64 --out molt-1.5.0-linux.zip
  molt pack build --version 1.5.0 --bin-dir dist --key molt.key --workloads release/pack.yaml --out molt-1.5.0.zip
  molt pack build --version 1.5.1 --bin-dir dist --key molt.key --delta-from molt-1.5.0.zip \
      --delta-from molt-1.4.2.zip --out molt-1.5.1.zip`,
		Args: packNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ name, v string }{{"version", opts.Version}, {"bin-dir", opts.BinDir}, {"key", keyPath}, {"out", opts.Out}} {
				if f.v == "" {
					return cli.Usage("--%s is required", f.name)
				}
			}
			if !pack.ValidVersion(opts.Version) {
				return cli.Usage("--version %q is not a valid version", opts.Version)
			}
			if released != "" {
				t, err := time.Parse(time.RFC3339, released)
				if err != nil {
					return cli.Usage("--released %q is not an RFC 3339 time (2026-11-23T08:00:00Z)", released)
				}
				opts.Released = t
			}
			for _, p := range platforms {
				goos, goarch, ok := strings.Cut(p, "/")
				if !ok || goos == "" || goarch == "" || strings.ContainsAny(goarch, "/_") || strings.Contains(goos, "_") {
					return cli.Usage("--platform %q is not GOOS/GOARCH", p)
				}
			}
			opts.Platforms = platforms
			sk, err := pass.loadSecretKey(cmd, keyPath)
			if err != nil {
				return err
			}
			opts.Key = sk
			if err := pack.Build(opts); err != nil {
				return cli.Exit(packExitFailed, err)
			}
			r, err := pack.Open(opts.Out)
			if err != nil {
				return packFailed(opts.Out, err)
			}
			defer r.Close()
			m, err := r.Verify([]pack.Key{sk.Public()})
			if err != nil {
				return packFailed(opts.Out, err)
			}
			st, err := os.Stat(opts.Out)
			if err != nil {
				return cli.Exit(packExitFailed, err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), map[string]any{
					"file": opts.Out, "size": st.Size(), "key_id": sk.ID(), "manifest": m,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s: molt %s, %d platforms (%s)%s%s, %s, signed by key %s\n",
				opts.Out, m.Version, len(m.Artifacts), strings.Join(m.Platforms(), ", "), workloadCount(m), patchCount(m), fmtBytes(st.Size()), sk.ID())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Version, "version", "", "version `V` the binaries were built with")
	f.StringVar(&opts.BinDir, "bin-dir", "", "output `DIR` of scripts/build.sh")
	f.StringVar(&keyPath, "key", "", "secret key file `SECRET` (molt pack keygen)")
	f.StringVar(&opts.Floor, "floor", "", "lowest version `V` agents may go to once they have seen this pack")
	f.StringVar(&released, "released", "", "release `TIME`, RFC 3339 (default: now)")
	f.StringVar(&opts.Out, "out", "", "pack `FILE` to write")
	f.StringArrayVar(&platforms, "platform", nil, "only `GOOS/GOARCH` (repeatable; each must be in --bin-dir)")
	f.StringVar(&opts.Workloads, "workloads", "", "the workloads' specs `FILE` (default: DIR/pack.yaml when it exists)")
	f.StringArrayVar(&opts.DeltaFrom, "delta-from", nil, "add patches from the files of the earlier version's pack `OLD.zip` (repeatable)")
	f.BoolVar(&opts.SkipVersionCheck, "skip-version-check", false, "do not run the host platform's binaries to check their version")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	pass.flags(cmd)
	return cmd
}

func newPackSignCmd() *cobra.Command {
	var (
		keyPath string
		pass    packPassphrase
	)
	cmd := &cobra.Command{
		Use:   "sign --key SECRET FILE",
		Short: "Re-sign a pack's manifest (e.g. after a key rotation)",
		Long: `Replaces the signature of pack FILE with one by the secret key. The old
signature is not checked (its key may be retired), but every artifact must
match the manifest: a signature never vouches for a pack that does not
verify. The pack is rewritten atomically.`,
		Example: `  molt pack sign --key new/molt.key molt-1.5.0.zip`,
		Args:    packFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return cli.Usage("--key is required")
			}
			sk, err := pass.loadSecretKey(cmd, keyPath)
			if err != nil {
				return err
			}
			if err := pack.Resign(args[0], sk, time.Now()); err != nil {
				return packFailed(args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s with key %s\n", args[0], sk.ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "secret key file `SECRET` (molt pack keygen)")
	pass.flags(cmd)
	return cmd
}

// patchCount says how many patches the pack carries and from which
// versions: ", 6 patches from 1.5.0, 1.4.2 (41.2 KiB)", or nothing.
func patchCount(m *pack.Manifest) string {
	ps := m.Patches()
	if len(ps) == 0 {
		return ""
	}
	var from []string
	var size int64
	stored := map[string]bool{}
	for _, p := range ps {
		if len(from) == 0 || from[len(from)-1] != p.From {
			from = append(from, p.From)
		}
		if !stored[p.Path] {
			stored[p.Path] = true
			size += p.Size
		}
	}
	return fmt.Sprintf(", %d patches from %s (%s)", len(ps), strings.Join(from, ", "), fmtBytes(size))
}
