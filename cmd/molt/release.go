package main

import (
	"archive/tar"
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

func newReleaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Import, list and remove releases (packs) on the server",
		Long: `A release is a pack made by "molt pack build": one version's binaries for
one or more platforms and a signed manifest. The server verifies a pack
against its trusted keys on import; agents verify it again against their
own keys before they run it.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newReleaseImportCmd(cf), newReleaseListCmd(cf), newReleaseRemoveCmd(cf))
	return cmd
}

func newReleaseImportCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "import PACK",
		Short:   "Upload a pack; the server verifies its signature and files",
		Example: `  molt release import molt-1.5.0.pack`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return cli.Exit(1, fmt.Errorf("pack: %w", err))
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return cli.Usage("pack %s is not a regular file", args[0])
			}
			if st.Size() > protocol.MaxPackSize {
				return cli.Exit(1, fmt.Errorf("pack %s is %s, over the server's limit of %s", args[0], fmtBytes(st.Size()), fmtBytes(protocol.MaxPackSize)))
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			body, err := packUpload(f, st.Size())
			if err != nil {
				return cli.Exit(1, fmt.Errorf("pack %s: %w", args[0], err))
			}
			defer body.Close()
			r, err := c.ImportRelease(cmd.Context(), io.LimitReader(body, protocol.MaxPackSize))
			if err != nil {
				return apiErr(fmt.Errorf("import %s: %w", args[0], err))
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "imported %s for %s\n", r.Version, strings.Join(r.Platforms, ", "))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the release as JSON")
	return cmd
}

// maxPackEntries bounds the files of a pack read here.
const maxPackEntries = 1000

// packUpload returns the body to upload for a pack file. The server takes
// a tar archive of the pack; a pack file from "molt pack build" is a zip,
// so its entries are streamed as a tar, unchanged and in order. A tar
// (or tar.gz) pack is sent as it is.
func packUpload(f *os.File, size int64) (io.ReadCloser, error) {
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if string(magic[:]) != "PK\x03\x04" {
		return io.NopCloser(f), nil
	}
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("not a readable zip: %w", err)
	}
	if len(zr.File) > maxPackEntries {
		return nil, fmt.Errorf("more than %d files", maxPackEntries)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(zipToTar(zr, pw))
	}()
	return pr, nil
}

func zipToTar(zr *zip.Reader, w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() {
			continue
		}
		if !zf.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", zf.Name)
		}
		if zf.UncompressedSize64 > pack.MaxArtifactSize {
			return fmt.Errorf("%s is larger than %d bytes", zf.Name, int64(pack.MaxArtifactSize))
		}
		hdr := &tar.Header{Name: zf.Name, Mode: int64(zf.Mode().Perm()), Size: int64(zf.UncompressedSize64),
			ModTime: zf.Modified, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", zf.Name, err)
		}
		_, err = io.Copy(tw, io.LimitReader(rc, hdr.Size+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", zf.Name, err)
		}
	}
	return tw.Close()
}

func newReleaseListCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			rs, err := c.Releases(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), nonNil(rs))
			}
			return printReleases(cmd.OutOrStdout(), rs, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

func printReleases(w io.Writer, rs []protocol.Release, now time.Time) error {
	tw := newTable(w)
	row(tw, "VERSION", "RELEASED", "FLOOR", "PLATFORMS", "SIZE", "IMPORTED")
	for _, r := range rs {
		row(tw, r.Version, fmtTime(r.Released, now), dash(r.Floor), strings.Join(r.Platforms, ","), fmtBytes(r.Size), fmtTime(r.Imported, now))
	}
	return tw.Flush()
}

func newReleaseRemoveCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove VERSION",
		Short: "Remove a release (refused while a run or a version pin needs it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.RemoveRelease(cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed release %s\n", args[0])
			return err
		},
	}
}
