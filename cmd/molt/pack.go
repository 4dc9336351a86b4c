package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/updater/pack"
)

// Exit codes of the molt pack commands.
const (
	packExitFailed = 1 // the pack was refused, or the operation failed
	packExitUsage  = 2 // flags, arguments or key files are wrong
)

// packPassphraseEnv lets CI unlock an encrypted secret key without a terminal.
const packPassphraseEnv = "MOLT_PACK_PASSPHRASE"

func newPackCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pack",
		Short: "Make, sign and check release packs",
		Long: `A pack is one version's molt-agent and molt-supervisor binaries for one or
more platforms, optionally the operator's workloads (their specs and files,
see docs/workloads.md), plus manifest.json (version, release time, floor,
each file's size and SHA-256, the workloads) and its minisign signature, in
one zip file.

Typical release:

  molt pack keygen --out ~/.molt-release            # once; keep molt.key safe
  scripts/build.sh 1.5.0 dist linux/amd64 windows/amd64
  molt pack build --version 1.5.0 --bin-dir dist --key ~/.molt-release/molt.key --out molt-1.5.0.zip
  molt pack verify --key ~/.molt-release/molt.pub molt-1.5.0.zip

Agents trust the public key (molt.pub, or its "RW..." line inline) listed in
trusted_keys of agent.yaml. Keys and signatures are minisign's format, so the
minisign tool can verify a manifest too:

  unzip molt-1.5.0.zip manifest.json manifest.json.sig
  minisign -V -p molt.pub -m manifest.json -x manifest.json.sig

Exit codes: 0 ok, 1 the pack was refused or the operation failed,
2 usage (flags, arguments, key files).`,
	}
	// Flag mistakes are usage errors (exit 2), for every pack subcommand.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage("%v", err) })
	cmd.AddCommand(newPackKeygenCmd(), newPackBuildCmd(), newPackSignCmd(), newPackVerifyCmd(), newPackInspectCmd(),
		newPackSignFileCmd(), newPackVerifyFileCmd())
	return cmd
}

// packFileArg accepts exactly one argument, the pack file, else a usage error.
func packFileArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.Usage("%s needs one pack file, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

// packNoArgs refuses positional arguments as a usage error.
func packNoArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 0 {
		return cli.Usage("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// packPassphrase is where an encrypted secret key's passphrase comes from:
// a file, the environment, or a prompt on the terminal, in that order.
type packPassphrase struct {
	file string
}

func (p *packPassphrase) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "passphrase-file", "",
		"read the secret key's passphrase from the first line of `FILE` (else $"+packPassphraseEnv+", else a prompt on the terminal)")
}

// get returns the passphrase; confirm asks twice at a prompt (new keys).
func (p *packPassphrase) get(cmd *cobra.Command, prompt string, confirm bool) (string, error) {
	if p.file != "" {
		b, err := smallfile.Read(p.file, 4096)
		if err != nil {
			return "", cli.Usage("--passphrase-file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return "", cli.Usage("--passphrase-file %s: the first line is empty", p.file)
		}
		return line, nil
	}
	if v := os.Getenv(packPassphraseEnv); v != "" {
		return v, nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		if confirm {
			// A new key: an unencrypted one is a choice keygen offers.
			return "", cli.Usage("a passphrase is needed and there is no terminal to ask: use --passphrase-file FILE or set %s, or pass --no-passphrase for an unencrypted key", packPassphraseEnv)
		}
		return "", cli.Usage("a passphrase is needed and there is no terminal to ask: use --passphrase-file FILE or set %s", packPassphraseEnv)
	}
	errOut := cmd.ErrOrStderr()
	fmt.Fprintf(errOut, "%s: ", prompt)
	first, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(errOut)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if confirm {
		fmt.Fprint(errOut, "Repeat the passphrase: ")
		second, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(errOut)
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		if string(first) != string(second) {
			return "", cli.Usage("the passphrases do not match")
		}
	}
	if len(first) == 0 {
		return "", cli.Usage("empty passphrase")
	}
	return string(first), nil
}

// loadSecretKey reads --key, asking for the passphrase only when the key
// is encrypted.
func (p *packPassphrase) loadSecretKey(cmd *cobra.Command, path string) (pack.SecretKey, error) {
	sk, err := pack.LoadSecretKey(path, func() (string, error) {
		return p.get(cmd, "Passphrase for "+path, false)
	})
	if err != nil {
		var ee *cli.ExitError
		if errors.As(err, &ee) {
			return sk, err
		}
		if errors.Is(err, pack.ErrWrongPassphrase) {
			return sk, cli.Exit(packExitFailed, err)
		}
		return sk, cli.Exit(packExitUsage, err)
	}
	return sk, nil
}

// packSize is a byte count flag that takes 2147483648, 2GiB, 512MiB, 64KiB.
type packSize int64

func (s *packSize) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *packSize) Type() string   { return "size" }
func (s *packSize) Set(v string) error {
	mult := int64(1)
	num := v
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size (e.g. 2GiB, 512MiB, 1048576)", v)
	}
	*s = packSize(n * mult)
	return nil
}

// packFailed turns a refusal into exit code 1 with the pack's name in front.
func packFailed(file string, err error) error {
	return cli.Exit(packExitFailed, fmt.Errorf("%s: %w", file, err))
}
