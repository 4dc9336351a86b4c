package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/updater/pack"
)

// maxSignedFile bounds a file sign-file and verify-file read: they are for
// checksum lists (SHA256SUMS), not for the artifacts themselves.
const maxSignedFile = 16 << 20

func newPackSignFileCmd() *cobra.Command {
	var (
		keyPath string
		pass    packPassphrase
	)
	cmd := &cobra.Command{
		Use:   "sign-file --key SECRET FILE",
		Short: "Sign any file (a release's SHA256SUMS) with the pack key, as minisign does",
		Long: `Writes FILE.minisig, a minisign signature of FILE by the secret key (the
pack-signing key of molt pack keygen, or one the minisign tool made).
"minisign -Vm FILE -p molt.pub" and "molt pack verify-file" check it.
scripts/release.sh signs SHA256SUMS this way (docs/packaging.md). FILE may
be up to 16 MiB: sign a list of checksums, not the artifacts.`,
		Example: `  molt pack sign-file --key ~/.molt-release/molt.key dist/1.5.0/SHA256SUMS`,
		Args:    packFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return cli.Usage("--key is required")
			}
			sk, err := pass.loadSecretKey(cmd, keyPath)
			if err != nil {
				return err
			}
			data, err := smallfile.Read(args[0], maxSignedFile)
			if err != nil {
				return packFailed(args[0], err)
			}
			sigPath := args[0] + ".minisig"
			sig := pack.SignFile(sk, data, filepath.Base(args[0]), time.Now())
			if err := atomicfile.WriteFile(sigPath, sig, 0o644); err != nil {
				return packFailed(sigPath, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s with key %s: %s\n", args[0], sk.ID(), sigPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "secret key file `SECRET` (molt pack keygen)")
	pass.flags(cmd)
	return cmd
}

func newPackVerifyFileCmd() *cobra.Command {
	var (
		keySpecs []string
		sigPath  string
	)
	cmd := &cobra.Command{
		Use:   "verify-file --key PUBLIC FILE",
		Short: "Check a file's minisign signature (FILE.minisig) against trusted keys",
		Long: `Checks that FILE.minisig (or --sig) is a signature of FILE by one of the
--key public keys (a .pub file or an inline "RW..." key). Prints
"ok: FILE signed by key <id>", or one line naming the problem and exits 1.`,
		Example: `  molt pack verify-file --key molt.pub SHA256SUMS && sha256sum -c SHA256SUMS`,
		Args:    packFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keySpecs) == 0 {
				return cli.Usage("--key PUBLIC is required (a .pub file or an inline RW... key; repeatable)")
			}
			keys, err := pack.LoadTrustedKeys(keySpecs)
			if err != nil {
				return cli.Exit(packExitUsage, fmt.Errorf("--key: %w", err))
			}
			if sigPath == "" {
				sigPath = args[0] + ".minisig"
			}
			data, err := smallfile.Read(args[0], maxSignedFile)
			if err != nil {
				return packFailed(args[0], err)
			}
			sig, err := smallfile.Read(sigPath, pack.MaxSignatureSize)
			if err != nil {
				return packFailed(sigPath, err)
			}
			id, err := pack.VerifyFile(data, sig, keys)
			if err != nil {
				return packFailed(args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s signed by key %s\n", args[0], id)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keySpecs, "key", nil, "trusted public key `PUBLIC` (file or inline; repeatable)")
	cmd.Flags().StringVar(&sigPath, "sig", "", "the signature file (default FILE.minisig)")
	return cmd
}
