// Package smallfile reads files that are small by contract (keys, tokens,
// state files), so that a wrong path or a hostile file cannot make a
// program read without bound.
package smallfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge is the error of a file over the limit.
var ErrTooLarge = errors.New("file too large")

// Read returns the contents of the file at path, which must hold at most
// limit bytes. Errors are *fs.PathError, as os.ReadFile's are; a larger
// file wraps ErrTooLarge.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(b)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, limit)}
	}
	return b, nil
}
