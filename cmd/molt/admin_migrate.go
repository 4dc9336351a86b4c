package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/artifacts"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/store"
)

// migrateResult is what molt admin migrate-store --json prints.
type migrateResult struct {
	From          string                 `json:"from"`
	To            string                 `json:"to"`
	Store         store.CopyInfo         `json:"store"`
	ArtifactStore string                 `json:"artifact_store,omitempty"`
	Packs         []artifacts.CopiedPack `json:"packs,omitempty"`
	// Running: the source's server was running (--allow-running): what
	// it accepted after the snapshot is not in the copy.
	Running bool    `json:"running"`
	Seconds float64 `json:"seconds"`
}

func newAdminMigrateCmd() *cobra.Command {
	var (
		from, to, art        string
		asJSON, allowRunning bool
	)
	cmd := &cobra.Command{
		Use:   "migrate-store --from DATA --to postgres://... [--artifacts s3://BUCKET/PREFIX]",
		Short: "Move a server's state from SQLite to PostgreSQL (and its packs to S3)",
		Long: `Copy the whole state of a molt serve on SQLite (DATA/molt.db) into an empty
PostgreSQL database, so that servers on PostgreSQL (--store postgres://...)
carry on where it stopped: agents keep their identities and check in
without enrolling again; runs, history, events, tokens, settings and
quarantines come along.

Stop molt serve on DATA first. A running server goes on accepting changes
(check-ins, deployment progress, events) after the copy is taken, and those
would not be in the copy: migrate-store refuses while DATA/serve.lock is
held, and holds it itself while it works, so that no server starts on DATA
meanwhile. --allow-running copies a snapshot anyway, for a trial: what the
server acknowledges after the snapshot is not carried over.

The source file is only read: a consistent snapshot of it (as admin backup
takes) is brought to this molt's schema and copied, in one transaction, all
or nothing. The target must hold no molt data (a database a molt serve ran
on is refused, naming what it holds); its schema is created. Ids continue
after the source's. Leases (which replica schedules) are not copied: they
belong to the source's processes.

--artifacts copies the packs' files from DATA/packs to an S3-compatible
store first (the URL molt serve --artifacts takes; credentials from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the
instance's role). Each file is read back and checked (size, SHA-256);
versions the store already holds byte for byte are skipped, so a second
run is cheap. Without --artifacts the packs stay in DATA/packs, which a
single server on PostgreSQL with the same --data still uses.

Then start molt serve --store postgres://... (--artifacts s3://...) where
agents reach it: the same URL, and a certificate they trust (DATA/tls/ of a
--dev server, or your own). Do not start the old server on DATA again.`,
		Example: `  systemctl stop molt
  molt admin migrate-store --from /var/lib/molt --to postgres://molt@db.internal/molt \
      --artifacts 's3://molt-packs/prod?region=eu-west-1'
  molt serve --data /var/lib/molt --store postgres://molt@db.internal/molt \
      --artifacts 's3://molt-packs/prod?region=eu-west-1'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return cli.Usage("--from is required: the data directory of molt serve on SQLite (its --data)")
			}
			if to == "" {
				return cli.Usage("--to is required: the PostgreSQL database to copy into, e.g. postgres://molt@db.internal/molt")
			}
			if !store.IsPostgres(to) {
				return cli.Usage("--to %q: want a postgres:// URL, e.g. postgres://molt@db.internal/molt", to)
			}
			if art != "" && !strings.HasPrefix(art, "s3://") {
				return cli.Usage("--artifacts %q: want s3://BUCKET/PREFIX?endpoint=URL&region=R, as molt serve --artifacts takes", art)
			}
			src := filepath.Join(from, "molt.db")
			if _, err := os.Stat(src); err != nil {
				return cli.Exit(1, fmt.Errorf("--from %s: no molt.db there: give the data directory of molt serve on SQLite (%w)", from, err))
			}
			res := migrateResult{From: from, To: redactURL(to)}
			stderr := cmd.ErrOrStderr()
			lock, err := platform.LockProcess(filepath.Join(from, "serve.lock"))
			switch {
			case err == nil:
				defer lock.Unlock()
			case errors.Is(err, platform.ErrLocked) && allowRunning:
				res.Running = true
				fmt.Fprintf(stderr, "warning: molt serve runs on %s (%v): copying a snapshot; what it accepts after the snapshot is NOT carried over\n", from, err)
			case errors.Is(err, platform.ErrLocked):
				return cli.Exit(1, fmt.Errorf("%s is in use by a running molt serve (%v): stop it first, so that nothing it acknowledges after the copy is lost (or pass --allow-running to copy a snapshot and lose what it accepts later)", from, err))
			default:
				return cli.Exit(1, fmt.Errorf("--from %s: %w", from, err))
			}

			start := time.Now()
			ctx := cmd.Context()
			var progress io.Writer = io.Discard
			if isTerminal(stderr) {
				progress = stderr
			}
			copied := map[string]bool{}
			if art != "" {
				dst, err := artifacts.Open(ctx, art, from)
				if err != nil {
					return cli.Exit(1, err)
				}
				res.ArtifactStore = dst.String()
				res.Packs, err = artifacts.CopyDir(ctx, filepath.Join(from, "packs"), dst, from, func(c artifacts.CopiedPack) {
					what := "copied"
					if c.Skipped {
						what = "already there"
					}
					fmt.Fprintf(progress, "pack %s: %d files, %d bytes, %s (%.1fs)\n", c.Version, c.Files, c.Bytes, what, c.Seconds)
				})
				if err != nil {
					return cli.Exit(1, err)
				}
				for _, c := range res.Packs {
					copied[c.Version] = true
				}
			}
			res.Store, err = store.CopyToPostgres(ctx, src, to, from, func(c store.CopiedTable) {
				fmt.Fprintf(progress, "table %s: %d rows (%.2fs)\n", c.Name, c.Rows, c.Seconds)
			})
			if err != nil {
				return cli.Exit(1, err)
			}
			res.Seconds = time.Since(start).Seconds()
			var missing []string
			if art != "" {
				for _, v := range res.Store.Releases {
					if !copied[v] {
						missing = append(missing, v)
					}
				}
			}
			if asJSON {
				if err := cli.PrintJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				printMigrate(cmd.OutOrStdout(), res)
			}
			if len(missing) > 0 {
				return cli.Exit(1, fmt.Errorf("releases %s have no files in %s: import their packs again on the new server", strings.Join(missing, ", "), filepath.Join(from, "packs")))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the data directory of molt serve on SQLite (its --data: molt.db, packs/)")
	f.StringVar(&to, "to", "", "the PostgreSQL database to copy into: postgres://USER@HOST/DB (pgx parameters, e.g. sslmode=verify-full); must hold no molt data")
	f.StringVar(&art, "artifacts", "", "also copy the packs from DATA/packs to this store: s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=true (as molt serve --artifacts)")
	f.BoolVar(&allowRunning, "allow-running", false, "copy a snapshot although molt serve runs on --from: what it accepts afterwards is NOT carried over")
	f.BoolVar(&asJSON, "json", false, "print what was copied as JSON")
	return cmd
}

func printMigrate(w io.Writer, res migrateResult) {
	s := res.Store
	rate := 0.0
	if s.Seconds > 0 {
		rate = float64(s.Rows) / s.Seconds
	}
	fmt.Fprintf(w, "copied %s (snapshot of %s, schema version %d) to %s: %d rows in %d tables, %.1fs (%.0f rows/s)\n",
		filepath.Join(res.From, "molt.db"), s.Snapshot.Format(time.RFC3339), s.SchemaVersion, res.To, s.Rows, len(s.Tables), s.Seconds, rate)
	if res.ArtifactStore != "" {
		var files, skipped int
		var bytes int64
		for _, p := range res.Packs {
			files += p.Files
			bytes += p.Bytes
			if p.Skipped {
				skipped++
			}
		}
		fmt.Fprintf(w, "packs: %d versions (%d files, %d bytes) in %s, %d of them already there\n", len(res.Packs), files, bytes, res.ArtifactStore, skipped)
	} else {
		fmt.Fprintf(w, "packs: not copied; they stay in %s (pass --artifacts s3://... for replicas)\n", filepath.Join(res.From, "packs"))
	}
	if res.Running {
		fmt.Fprintf(w, "warning: molt serve was running on %s: what it accepted after the snapshot is not in the copy\n", res.From)
	}
	fmt.Fprintf(w, "next: start molt serve --store %s at the URL agents use, with a certificate they trust; do not start the old server on %s again\n", res.To, res.From)
}

// redactURL is u without its password, for output.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "postgres://..."
	}
	return p.Redacted()
}
