package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moltfleet/molt/internal/cli"
)

// secretFile is a file a secret is written to, readable by its owner
// only. It is opened before the secret exists (so a path that cannot be
// written refuses before the server makes a token nobody will see) and
// either committed with the secret or abandoned.
//
// Without force an existing file is refused. With force the secret goes
// to a new file (mode 0600) renamed over the old one: truncating it
// would keep the old file's mode, 0644 perhaps.
type secretFile struct {
	path string
	f    *os.File
	tmp  bool
	done bool
}

// errSecretFileExists is returned for an existing --out file without --force.
var errSecretFileExists = errors.New("exists; pass --force to replace it")

func openSecretFile(path string, force bool) (*secretFile, error) {
	if path == "" {
		return nil, cli.Usage("--out: give a file name")
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return nil, cli.Exit(1, fmt.Errorf("--out %s: %w", path, errSecretFileExists))
		}
		if err != nil {
			return nil, cli.Exit(1, fmt.Errorf("--out: %w", err))
		}
		return &secretFile{path: path, f: f}, nil
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, cli.Exit(1, fmt.Errorf("--out %s: not a regular file", path))
	}
	// os.CreateTemp makes the file with mode 0600.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, cli.Exit(1, fmt.Errorf("--out: %w", err))
	}
	return &secretFile{path: path, f: f, tmp: true}, nil
}

// commit writes secret and a newline and puts the file in place.
func (s *secretFile) commit(secret string) error {
	s.done = true
	_, err := s.f.WriteString(secret + "\n")
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && s.tmp {
		err = os.Rename(s.f.Name(), s.path)
	}
	if err != nil {
		_ = os.Remove(s.f.Name())
		return fmt.Errorf("--out %s: %w", s.path, err)
	}
	return nil
}

// abandon removes the file unless commit was called; deferred.
func (s *secretFile) abandon() {
	if s.done {
		return
	}
	_ = s.f.Close()
	_ = os.Remove(s.f.Name())
}
