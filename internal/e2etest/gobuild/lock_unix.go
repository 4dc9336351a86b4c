//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gobuild

import (
	"os"
	"sync"
	"syscall"
)

// withLock runs f holding an exclusive lock on path (made if missing):
// processes asking for the same build wait for the first to make it.
func withLock(path string, f func() error) error {
	l, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := flock(l, syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(l.Fd()), syscall.LOCK_UN)
	return f()
}

// holdShared takes a shared lock on path for the rest of the process.
func holdShared(path string) error {
	l, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := flock(l, syscall.LOCK_SH); err != nil {
		l.Close()
		return err
	}
	heldMu.Lock()
	held = append(held, l) // kept open: the lock lasts as long as the process
	heldMu.Unlock()
	return nil
}

// held keeps holdShared's files (and so their locks) alive.
var (
	heldMu sync.Mutex
	held   []*os.File
)

// tryExclusive takes an exclusive lock on path if nobody holds it. A
// missing file is nobody's (and is not made: that would touch its
// directory, which says when the generation was last used).
func tryExclusive(path string) (unlock func(), ok bool) {
	l, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return func() {}, true
	}
	if err != nil {
		return nil, false
	}
	if flock(l, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		l.Close()
		return nil, false
	}
	return func() { l.Close() }, true
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// lockingWorks says whether processes lock each other out here.
const lockingWorks = true
