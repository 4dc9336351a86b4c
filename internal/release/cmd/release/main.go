// Command release makes a version's release artifacts from binaries
// scripts/build.sh built; scripts/release.sh runs it (see
// docs/packaging.md).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/release"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/updater/pack"
)

// Environment variables the release key and its passphrase may come from.
const (
	keyEnv        = "MOLT_RELEASE_KEY"
	passphraseEnv = "MOLT_PACK_PASSPHRASE"
)

func main() {
	os.Exit(cli.Main(newRootCmd(), os.Args[1:], os.Stderr))
}

func newRootCmd() *cobra.Command {
	var (
		o                         release.Options
		mtime                     int64
		keyPath, passFile, commit string
		noMSI, unsigned, measure  bool
	)
	cmd := &cobra.Command{
		Use:   "release --version V --bin-dir DIR --out DIR",
		Short: "Make archives, deb/rpm packages, the MSI and signed SHA256SUMS",
		Long: `Makes a release's artifacts in --out from the binaries scripts/build.sh
put in --bin-dir (DIR/<goos>_<goarch>/), for each --platform:

  molt_V_<os>_<arch>.tar.gz (.zip for Windows)   the three binaries, README.md, LICENSE
  molt-agent and molt-server .deb and .rpm         linux/amd64 and linux/arm64
  molt_V_windows_amd64.msi                         windows/amd64, with wixl
  SHA256SUMS, SHA256SUMS.minisig                   signed with the release key

The key (minisign format, as "molt pack keygen" makes) comes from --key or
$` + keyEnv + `; an encrypted one's passphrase from --passphrase-file or
$` + passphraseEnv + `. Without a key it refuses, unless --unsigned.

It prints each binary's size (and, with --measure-unstripped, the size of
the same build without -s -w) and each artifact's size.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Version == "" || o.BinDir == "" || o.Out == "" {
				return cli.Usage("--version, --bin-dir and --out are required")
			}
			if len(o.Platforms) == 0 {
				o.Platforms = release.DefaultPlatforms
			}
			var plats []release.Platform
			for _, s := range o.Platforms {
				p, err := release.ParsePlatform(s)
				if err != nil {
					return cli.Usage("--platform: %v", err)
				}
				plats = append(plats, p)
			}
			o.Now = time.Now()
			o.MTime = o.Now.UTC().Truncate(time.Second)
			if cmd.Flags().Changed("mtime") {
				o.MTime = time.Unix(mtime, 0).UTC()
			} else if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return cli.Usage("SOURCE_DATE_EPOCH: %q is not Unix seconds", v)
				}
				o.MTime = time.Unix(n, 0).UTC()
			}
			if keyPath == "" {
				keyPath = os.Getenv(keyEnv)
			}
			switch {
			case keyPath != "":
				sk, err := pack.LoadSecretKey(keyPath, func() (string, error) { return passphrase(passFile) })
				if err != nil {
					return cli.Exit(2, fmt.Errorf("--key %s: %w", keyPath, err))
				}
				o.Key = &sk
			case !unsigned:
				return cli.Usage("no release key: pass --key FILE or set %s (a minisign secret key, e.g. from molt pack keygen), or --unsigned", keyEnv)
			}
			if !noMSI && hasWindowsAMD64(plats) {
				w, err := exec.LookPath("wixl")
				if err != nil {
					return cli.Usage("wixl not found (apt-get install wixl); pass --no-msi to make the release without the MSI")
				}
				o.Wixl = w
			}
			out := cmd.OutOrStdout()
			sizes, err := release.Sizes(cmd.Context(), o.Root, o.BinDir, o.Version, commit, plats, measure)
			if err != nil {
				return err
			}
			arts, err := release.Make(o)
			if err != nil {
				return err
			}
			printSizes(out, sizes)
			printArtifacts(out, o.Out, arts, o.Key)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Version, "version", "", "the release's version, as given to scripts/build.sh")
	f.StringVar(&o.BinDir, "bin-dir", "", "scripts/build.sh's output directory")
	f.StringVar(&o.Out, "out", "", "where the artifacts go")
	f.StringArrayVar(&o.Platforms, "platform", nil, "GOOS/GOARCH (repeat; default "+strings.Join(release.DefaultPlatforms, " ")+")")
	f.StringVar(&o.Root, "root", ".", "the module's root (README.md, LICENSE)")
	f.Int64Var(&mtime, "mtime", 0, "time of the files inside archives and packages, in Unix seconds: the commit's time, for reproducible bytes (default $SOURCE_DATE_EPOCH, else now)")
	f.StringVar(&commit, "commit", "unknown", "the commit scripts/build.sh stamped (for the --measure-unstripped build)")
	f.StringVar(&keyPath, "key", "", "release secret key (minisign format; default $"+keyEnv+")")
	f.StringVar(&passFile, "passphrase-file", "", "the key's passphrase, first line of `FILE` (default $"+passphraseEnv+")")
	f.BoolVar(&unsigned, "unsigned", false, "write SHA256SUMS without a signature when there is no key")
	f.BoolVar(&noMSI, "no-msi", false, "skip the Windows MSI (needs wixl)")
	f.BoolVar(&measure, "measure-unstripped", false, "build each binary once more without -s -w and print both sizes")
	return cmd
}

func hasWindowsAMD64(plats []release.Platform) bool {
	for _, p := range plats {
		if p.OS == "windows" && p.Arch == "amd64" {
			return true
		}
	}
	return false
}

// passphrase reads the key's passphrase from file, else the environment.
func passphrase(file string) (string, error) {
	if file != "" {
		b, err := smallfile.Read(file, 4096)
		if err != nil {
			return "", fmt.Errorf("--passphrase-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if v := os.Getenv(passphraseEnv); v != "" {
		return v, nil
	}
	return "", errors.New("the key is encrypted: give its passphrase with --passphrase-file FILE or $" + passphraseEnv)
}

func printSizes(w io.Writer, sizes []release.BinarySize) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "binaries (shipped: -trimpath -s -w; unstripped: the same build with its symbol table and DWARF):")
	fmt.Fprintln(tw, "platform\tbinary\tunstripped\tshipped\tsaved\t")
	for _, s := range sizes {
		un, saved := "-", "-"
		if s.Unstripped > 0 {
			un = release.MiB(s.Unstripped)
			saved = strconv.FormatFloat(100*float64(s.Unstripped-s.Stripped)/float64(s.Unstripped), 'f', 0, 64) + " %"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", s.Platform, s.Program, un, release.MiB(s.Stripped), saved)
	}
	tw.Flush()
}

func printArtifacts(w io.Writer, dir string, arts []release.Artifact, key *pack.SecretKey) {
	fmt.Fprintf(w, "\nartifacts in %s:\n", dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, a := range arts {
		fmt.Fprintf(tw, "%s\t%d\t(%s)\n", a.Name, a.Size, release.MiB(a.Size))
	}
	tw.Flush()
	if key == nil {
		fmt.Fprintf(w, "\nSHA256SUMS is NOT signed (--unsigned)\n")
		return
	}
	fmt.Fprintf(w, "\nSHA256SUMS signed by key %s; check with: minisign -Vm SHA256SUMS -p molt.pub (or molt pack verify-file --key molt.pub SHA256SUMS), then sha256sum -c SHA256SUMS\n", key.ID())
}
