package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
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

Prints one line, "ok: molt 1.5.0, 3 platforms, signed by key <id>" (with
", 2 workloads (41 files)" after the platforms when the pack carries
workloads), or one line naming the problem and exits 1.`,
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
					res["workloads"], res["workload_files"] = countWorkloads(m)
				}
				if jerr := cli.PrintJSON(cmd.OutOrStdout(), res); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return packFailed(file, err)
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "ok: molt %s, %d platforms%s%s, signed by key %s\n", m.Version, len(m.Artifacts), workloadCount(m), patchCount(m), keyID)
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
		Short: "Show a pack's manifest, platforms, files, workloads and signing key id",
		Long: `Shows what pack FILE says about itself: version, release time, floor, each
platform's files with size and SHA-256, each platform's workloads (command,
checks, number of files and their size; --json lists every file), and the
id of the key that signed the manifest. It needs no key and checks no signature or hash: use
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
				for _, a := range in.Manifest.Files() {
					if !r.Contains(a.Path) {
						in.Missing = append(in.Missing, a.Path)
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
	if len(m.Workloads) > 0 {
		fmt.Fprintln(w, "\nPLATFORM\tWORKLOAD\tCOMMAND\tCHECKS\tFILES")
		for _, p := range m.Platforms() {
			for _, wl := range m.PlatformWorkloads(p) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s, %s\n", p, wl.Spec.Name, commandLine(wl.Spec), checksLine(wl.Spec), plural(len(wl.Files), "file"), fmtBytes(wl.TreeSize()))
			}
		}
	}
	if ps := m.Patches(); len(ps) > 0 {
		size := map[string]int64{}
		for _, a := range m.Files() {
			size[a.Path] = a.Size
		}
		fmt.Fprintln(w, "\nFROM\tFILE\tPATCH\tOF\tBASE SHA256")
		for _, p := range ps {
			of := ""
			if n := size[p.Target]; n > 0 {
				of = fmt.Sprintf("%s (%.2f %%)", fmtBytes(n), 100*float64(p.Size)/float64(n))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.From, p.Target, fmtBytes(p.Size), of, p.BaseSHA256)
		}
	}
	if len(in.Missing) > 0 {
		fmt.Fprintf(w, "\nnot in the pack: %s\n", strings.Join(in.Missing, ", "))
	}
}

// countWorkloads counts the workloads of every platform and their files.
func countWorkloads(m *pack.Manifest) (workloads, files int) {
	for _, ws := range m.Workloads {
		for _, w := range ws {
			workloads++
			files += len(w.Files)
		}
	}
	return workloads, files
}

// workloadCount is ", 2 workloads (41 files)", or "" for a pack without.
func workloadCount(m *pack.Manifest) string {
	n, files := countWorkloads(m)
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %s (%s)", plural(n, "workload"), plural(files, "file"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// commandLine is the workload's command and arguments as a shell would
// take them.
func commandLine(s spec.Spec) string {
	words := []string{shellWord(s.Command)}
	for _, a := range s.Args {
		words = append(words, shellWord(a))
	}
	return strings.Join(words, " ")
}

func shellWord(w string) string {
	if w == "" || strings.ContainsFunc(w, func(r rune) bool { return r <= ' ' || strings.ContainsRune(`"'\$;&|<>()*?[]{}#~`+"`", r) }) {
		return strconv.Quote(w)
	}
	return w
}

// checksLine is every check of the spec in one line: "ready http URL
// within 30s; live tcp host:port every 10s; busy command ...".
func checksLine(s spec.Spec) string {
	parts := []string{"ready " + probeLine(s.Ready.Probe)}
	if s.Ready.Within != 0 {
		parts[0] += " within " + s.Ready.Within.D().String()
	}
	if s.Live != nil {
		l := "live " + probeLine(s.Live.Probe)
		if s.Live.Interval != 0 {
			l += " every " + s.Live.Interval.D().String()
		}
		parts = append(parts, l)
	}
	if s.Busy != nil {
		parts = append(parts, "busy "+probeLine(s.Busy.Probe))
	}
	return strings.Join(parts, "; ")
}

func probeLine(p spec.Probe) string {
	switch p.Kind() {
	case spec.KindHTTP:
		return "http " + p.HTTP
	case spec.KindTCP:
		return "tcp " + p.TCP
	case spec.KindCommand:
		words := make([]string, len(p.Command))
		for i, w := range p.Command {
			words[i] = shellWord(w)
		}
		return "command " + strings.Join(words, " ")
	case spec.KindRunning:
		return "running " + p.Running.D().String()
	case spec.KindFile:
		return "file"
	}
	return p.Kind()
}
