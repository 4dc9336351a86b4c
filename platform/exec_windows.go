package platform

// ExecSelf is not possible on Windows: a process cannot replace its image.
// The supervisor exits instead and the service manager starts it again.
func ExecSelf(path string, args, env []string) error { return ErrNotSupported }
