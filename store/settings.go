package store

// SetSetting stores a setting's value, replacing the one it had.
func (t *Tx) SetSetting(key, value string) error {
	_, err := t.exec(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// DeleteSetting removes a setting, which returns to its default; removing
// one that is not stored changes nothing.
func (t *Tx) DeleteSetting(key string) error {
	_, err := t.exec(`DELETE FROM settings WHERE key = ?`, key)
	return err
}
