package updater

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// removeAll is os.RemoveAll with a path-by-path fallback on Windows.
// There os.RemoveAll deletes through handles relative to the parent
// directory, which not every implementation of the Windows API supports
// (Wine answers "Invalid function"); plain DeleteFile and RemoveDirectory
// work everywhere. A file that cannot be removed (a running .exe) still
// fails the call, after everything else is gone.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || runtime.GOOS != "windows" {
		return err
	}
	return removeTree(path)
}

func removeTree(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range entries {
			errs = append(errs, removeTree(filepath.Join(path, e.Name())))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return os.Remove(path)
}
