package store

// SetAgentDesired records v as the version agent id should run: the last
// target it reached, which a repair brings it back to.
func (t *Tx) SetAgentDesired(id, v string) error {
	_, err := t.exec(`UPDATE agents SET desired = ? WHERE id = ?`, v, id)
	return err
}
