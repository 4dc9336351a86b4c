package store

import (
	"context"
	"fmt"

	"github.com/moltfleet/molt/protocol"
)

// InsertRelease records an imported release (its Quarantined is not
// stored: quarantines are rows of their own). A version recorded already
// is an error.
func (t *Tx) InsertRelease(r protocol.Release) error {
	plats, err := marshalColumn(r.Platforms)
	if err != nil {
		return fmt.Errorf("insert release %s: %w", r.Version, err)
	}
	_, err = t.exec(`INSERT INTO releases (version, released, floor, platforms, imported, size) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Version, Nanos(r.Released), r.Floor, plats, Nanos(r.Imported), r.Size)
	return err
}

// DeleteRelease forgets release version (its quarantines stay).
func (t *Tx) DeleteRelease(version string) error {
	_, err := t.exec(`DELETE FROM releases WHERE version = ?`, version)
	return err
}

// Releases lists the imported releases by version, byte-wise (the server
// orders them by semantic version).
func (db *DB) Releases(ctx context.Context) ([]protocol.Release, error) {
	rows, err := db.query(ctx, `SELECT version, released, floor, platforms, imported, size FROM releases ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []protocol.Release{}
	for rows.Next() {
		var rel protocol.Release
		var released, imported int64
		var plats string
		if err := rows.Scan(&rel.Version, &released, &rel.Floor, &plats, &imported, &rel.Size); err != nil {
			return nil, err
		}
		rel.Released, rel.Imported = FromNanos(released), FromNanos(imported)
		if err := unmarshalColumn(plats, &rel.Platforms); err != nil {
			return nil, fmt.Errorf("release %s: %w", rel.Version, err)
		}
		out = append(out, rel)
	}
	return out, rows.Err()
}
