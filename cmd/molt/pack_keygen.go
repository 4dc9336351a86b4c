package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
)

// Names of the key files keygen writes.
const (
	packSecretKeyName = "molt.key"
	packPublicKeyName = "molt.pub"
)

func newPackKeygenCmd() *cobra.Command {
	var (
		out          string
		noPassphrase bool
		force        bool
		kdf          string
		asJSON       bool
		pass         packPassphrase
	)
	cmd := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Make a pack-signing key pair (minisign format)",
		Long: `Makes an Ed25519 signing key pair in minisign's format:

  DIR/molt.key   the secret key, mode 0600, encrypted with a passphrase
                 (scrypt, as minisign does) unless --no-passphrase
  DIR/molt.pub   the public key: give it (or its "RW..." line) to agents
                 in trusted_keys of agent.yaml

The passphrase comes from --passphrase-file, else $MOLT_PACK_PASSPHRASE,
else a prompt on the terminal (asked twice). Without a terminal and without
one of those, keygen refuses: an unencrypted key must be asked for with
--no-passphrase (e.g. for a key kept in a CI secret store).

--kdf sensitive (the default, what minisign uses) costs 1 GiB of memory and
a few seconds at every unlock; --kdf interactive costs 16 MiB and well under
a second, for keys unlocked often. An existing key is never overwritten
unless --force.`,
		Example: `  molt pack keygen --out ~/.molt-release
  MOLT_PACK_PASSPHRASE=... molt pack keygen --out keys --kdf interactive
  molt pack keygen --out ci-keys --no-passphrase --json`,
		Args: packNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usage("--out DIR is required")
			}
			cost := pack.CostSensitive
			switch kdf {
			case "sensitive":
			case "interactive":
				cost = pack.CostInteractive
			default:
				return cli.Usage("--kdf: %q is not sensitive or interactive", kdf)
			}
			if noPassphrase && pass.file != "" {
				return cli.Usage("--no-passphrase and --passphrase-file exclude each other")
			}
			secPath := filepath.Join(out, packSecretKeyName)
			pubPath := filepath.Join(out, packPublicKeyName)
			if !force {
				for _, p := range []string{secPath, pubPath} {
					if _, err := os.Lstat(p); err == nil {
						return cli.Exit(packExitFailed, fmt.Errorf("%s exists; refusing to overwrite a signing key (use --force to replace it)", p))
					} else if !errors.Is(err, fs.ErrNotExist) {
						return cli.Exit(packExitFailed, err)
					}
				}
			}
			passphrase := ""
			if !noPassphrase {
				var err error
				if passphrase, err = pass.get(cmd, "Passphrase for the new key", true); err != nil {
					return err
				}
			}
			pub, sec, err := pack.GenerateKey(nil)
			if err != nil {
				return cli.Exit(packExitFailed, err)
			}
			secText, err := pack.MarshalSecretKey(sec, passphrase, cost)
			if err != nil {
				return cli.Exit(packExitFailed, err)
			}
			pubText, _ := pub.MarshalText()
			if err := os.MkdirAll(out, 0o700); err != nil {
				return cli.Exit(packExitFailed, err)
			}
			if err := atomicfile.WriteFile(secPath, secText, 0o600); err != nil {
				return cli.Exit(packExitFailed, fmt.Errorf("write secret key: %w", err))
			}
			if err := atomicfile.WriteFile(pubPath, pubText, 0o644); err != nil {
				return cli.Exit(packExitFailed, fmt.Errorf("write public key: %w", err))
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), map[string]any{
					"secret_key_file": secPath,
					"public_key_file": pubPath,
					"public_key":      pub.String(),
					"key_id":          pub.ID(),
					"encrypted":       passphrase != "",
				})
			}
			protection := "passphrase-protected"
			if passphrase == "" {
				protection = "NOT encrypted"
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "secret key: %s (mode 0600, %s; keep it off the fleet)\n", secPath, protection)
			fmt.Fprintf(w, "public key: %s\n", pubPath)
			fmt.Fprintf(w, "key id:     %s\n", pub.ID())
			fmt.Fprintf(w, "\nFor agent.yaml:\n\ntrusted_keys:\n  - %s\n", pub.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "`DIR` for molt.key and molt.pub (created with mode 0700)")
	cmd.Flags().BoolVar(&noPassphrase, "no-passphrase", false, "store the secret key unencrypted")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key pair in DIR")
	cmd.Flags().StringVar(&kdf, "kdf", "sensitive", "passphrase hardening `COST`: sensitive (1 GiB, as minisign) or interactive (16 MiB)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	pass.flags(cmd)
	return cmd
}
