package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
)

func newPackVerifyCmd() *cobra.Command {
	var (
		keySpecs  []string
		platforms []string
		maxSize   = packSize(pack.DefaultMaxPackSize)
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "verify --key PUBLIC FILE",
		Short: "Check a pack's signature and every file's size and SHA-256",
		Long: `Verifies pack FILE as an agent would: the manifest's signature must be
by one of the --key public keys (a .pub file or an inline "RW..." key), the
pack must hold exactly the files the manifest names, and every file's size
and SHA-256 must match. --platform also requires a platform to be present.

Prints one line, "ok: molt 1.5.0, 3 platforms, signed by key <id>", or one
line naming the problem and exits 1.`,
		Example: `  molt pack verify --key molt.pub molt-1.5.0.zip
  molt pack verify --key RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 \
      --platform linux/amd64 --platform windows/amd64 molt-1.5.0.zip`,
		Args: packFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if len(keySpecs) == 0 {
				return cli.Usage("--key PUBLIC is required (a .pub file or an inline RW... key; repeatable)")
			}
			keys, err := pack.LoadTrustedKeys(keySpecs)
			if err != nil {
				return cli.Exit(packExitUsage, fmt.Errorf("--key: %w", err))
			}
			m, keyID, err := verifyPack(file, keys, platforms, int64(maxSize))
			if asJSON {
				res := map[string]any{"file": file, "ok": err == nil}
				if err != nil {
					res["error"] = err.Error()
				} else {
					res["version"], res["platforms"], res["key_id"] = m.Version, m.Platforms(), keyID
				}
				if jerr := cli.PrintJSON(cmd.OutOrStdout(), res); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return packFailed(file, err)
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "ok: molt %s, %d platforms, signed by key %s\n", m.Version, len(m.Artifacts), keyID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keySpecs, "key", nil, "trusted `PUBLIC` key: a .pub file or an inline RW... key (repeatable)")
	f.StringArrayVar(&platforms, "platform", nil, "require `GOOS/GOARCH` in the pack (repeatable)")
	f.Var(&maxSize, "max-size", "refuse packs larger than `SIZE` (e.g. 2GiB, 512MiB)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (also on failure, with exit code 1)")
	return cmd
}

func verifyPack(file string, keys []pack.Key, platforms []string, maxSize int64) (*pack.Manifest, string, error) {
	r, err := pack.OpenLimit(file, maxSize)
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	m, err := r.VerifyAll(keys)
	if err != nil {
		return nil, "", err
	}
	for _, p := range platforms {
		if _, err := m.PlatformArtifacts(p); err != nil {
			return nil, "", err
		}
	}
	id, err := pack.SignatureKeyID(r.SignatureBytes())
	return m, id, err
}

// packInspection is what inspect shows; its JSON form is stable for scripts.
type packInspection struct {
	File     string         `json:"file"`
	Size     int64          `json:"size"`
	Manifest *pack.Manifest `json:"manifest,omitempty"`
	Error    string         `json:"manifest_error,omitempty"`
	// Missing lists artifact paths the manifest names but the pack lacks.
	Missing   []string `json:"missing_files,omitempty"`
	Signature struct {
		KeyID          string `json:"key_id,omitempty"`
		TrustedComment string `json:"trusted_comment,omitempty"`
		Error          string `json:"error,omitempty"`
		Checked        bool   `json:"checked"`
	} `json:"signature"`
}

func newPackInspectCmd() *cobra.Command {
	var (
		maxSize = packSize(pack.DefaultMaxPackSize)
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a pack's manifest, platforms, files and signing key id",
		Long: `Shows what pack FILE says about itself: version, release time, floor, each
platform's files with size and SHA-256, and the id of the key that signed
the manifest. It needs no key and checks no signature or hash: use
"molt pack verify" before trusting anything shown here.`,
		Example: `  molt pack inspect molt-1.5.0.zip
  molt pack inspect --json molt-1.5.0.zip | jq -r '.manifest.artifacts | keys[]'`,
		Args: packFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			r, err := pack.OpenLimit(file, int64(maxSize))
			if err != nil {
				return packFailed(file, err)
			}
			defer r.Close()
			var in packInspection
			in.File = file
			if st, err := os.Stat(file); err == nil {
				in.Size = st.Size()
			}
			if in.Manifest, err = r.UnverifiedManifest(); err != nil {
				in.Error = err.Error()
			} else {
				for _, p := range in.Manifest.Platforms() {
					for _, role := range []string{pack.RoleAgent, pack.RoleSupervisor} {
						if a, ok := in.Manifest.Artifacts[p][role]; ok && !isPackURL(a.Path) && !r.Contains(a.Path) {
							in.Missing = append(in.Missing, a.Path)
						}
					}
				}
			}
			if in.Signature.KeyID, err = pack.SignatureKeyID(r.SignatureBytes()); err != nil {
				in.Signature.Error = err.Error()
			} else {
				in.Signature.TrustedComment, _ = pack.SignatureComment(r.SignatureBytes())
			}
			if asJSON {
				if err := cli.PrintJSON(cmd.OutOrStdout(), in); err != nil {
					return err
				}
			} else {
				printInspection(cmd, &in)
			}
			if in.Manifest == nil {
				return packFailed(file, fmt.Errorf("%s", in.Error))
			}
			return nil
		},
	}
	cmd.Flags().Var(&maxSize, "max-size", "refuse packs larger than `SIZE` (e.g. 2GiB, 512MiB)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printInspection(cmd *cobra.Command, in *packInspection) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "pack:\t%s (%s)\n", in.File, fmtBytes(in.Size))
	if in.Signature.Error != "" {
		fmt.Fprintf(w, "signature:\tunreadable: %s\n", in.Signature.Error)
	} else {
		fmt.Fprintf(w, "signature:\tkey %s, NOT CHECKED (molt pack verify --key checks it)\n", in.Signature.KeyID)
		if c := strings.ReplaceAll(in.Signature.TrustedComment, "\t", " "); c != "" {
			fmt.Fprintf(w, "comment:\t%s (unverified)\n", c)
		}
	}
	m := in.Manifest
	if m == nil {
		fmt.Fprintf(w, "manifest:\t%s\n", in.Error)
		return
	}
	fmt.Fprintf(w, "version:\t%s\n", m.Version)
	fmt.Fprintf(w, "released:\t%s\n", m.Released.UTC().Format(time.RFC3339))
	floor := m.Floor
	if floor == "" {
		floor = "none"
	}
	fmt.Fprintf(w, "floor:\t%s\n", floor)
	fmt.Fprintf(w, "platforms:\t%d\n\n", len(m.Artifacts))
	fmt.Fprintln(w, "PLATFORM\tROLE\tPATH\tSIZE\tSHA256")
	for _, p := range m.Platforms() {
		for _, role := range []string{pack.RoleAgent, pack.RoleSupervisor} {
			a, ok := m.Artifacts[p][role]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p, role, a.Path, fmtBytes(a.Size), a.SHA256)
		}
	}
	if len(in.Missing) > 0 {
		fmt.Fprintf(w, "\nnot in the pack: %s\n", strings.Join(in.Missing, ", "))
	}
}

func isPackURL(p string) bool {
	return strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://")
}
