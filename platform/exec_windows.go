package platform

import "os"

// CanExecSelf is false: see ExecSelf.
const CanExecSelf = false

// ExecSelf is not possible on Windows: a process cannot replace its image.
// The supervisor exits instead and the service manager starts it again.
func ExecSelf(path string, args, env []string) error { return ErrNotSupported }

// AdoptFile opens a handle inherited across ExecSelf; with no ExecSelf on
// Windows it only wraps the handle.
func AdoptFile(fd uintptr, name string) *os.File { return os.NewFile(fd, name) }

// DropAcrossExec has nothing to undo on Windows.
func DropAcrossExec(f *os.File) {}
