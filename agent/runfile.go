package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// writeRunFile replaces path with v as indented JSON, atomically (temp
// file and rename: a reader sees the old content or the new) but without
// fsyncs. It is for files that describe the running process, like
// state/daemon.json: after a power cut that process is gone and the file
// is stale whatever was synced, so a sync would only add its milliseconds
// to the agent's way to ready.
func writeRunFile(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
