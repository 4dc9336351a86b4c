package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/store"
)

// newAdminCmd is the tree of commands run on the server's host, against
// its data rather than its API.
func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Maintain a server's data on its host (backup, migrate-store)",
		Long: `Commands run on the control server's host, against its data directory
rather than through its API.`,
	}
	cmd.AddCommand(newAdminBackupCmd(), newAdminMigrateCmd())
	return cmd
}

func newAdminBackupCmd() *cobra.Command {
	var (
		data, out string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "backup --data DIR --out FILE",
		Short: "Copy a server's SQLite database consistently, while it runs",
		Long: `Write a consistent copy of DATA/molt.db to a new file while molt serve
keeps running: the state as one transaction saw it, compacted, mode 0600.
The copy is then opened and checked (integrity, schema version, counts), so
that a copy that could not be restored is never reported as a backup.

Restore: stop the server, put the copy in place of DATA/molt.db (removing
molt.db-wal and molt.db-shm), start it. Packs are files in DATA/packs (or in
the bucket of --artifacts): copy them too, or import them again.

A server on PostgreSQL (--store postgres://...) is backed up with
pg_dump -Fc instead (docs/server.md).`,
		Example: `  molt admin backup --data /var/lib/molt --out /backup/molt-$(date +%F).db
  molt admin backup --data /var/lib/molt --out b.db --json | jq .agents`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usage("--out is required: the new file to write the copy to")
			}
			start := time.Now()
			info, err := store.Backup(cmd.Context(), filepath.Join(data, "molt.db"), out)
			if err != nil {
				return cli.Exit(1, err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s: %d bytes, schema version %d, %d agents, %d deployments, %d events (%s)\n",
				info.Path, info.Bytes, info.SchemaVersion, info.Agents, info.Deployments, info.Events, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "molt-data", "the server's data directory (molt serve --data)")
	f.StringVar(&out, "out", "", "the file to write (must not exist)")
	f.BoolVar(&asJSON, "json", false, "print what was written as JSON")
	return cmd
}
