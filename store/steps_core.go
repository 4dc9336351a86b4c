package store

import "time"

// InsertStep adds a line to deployment dep's DEPLOY report, unless one of
// the same name at the same time is there already (a report sent again),
// and says whether it added it.
func (t *Tx) InsertStep(dep int64, at time.Time, name, detail string) (bool, error) {
	n, err := affected(t.exec(`INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, dep, Nanos(at), name, detail))
	return n > 0, err
}
