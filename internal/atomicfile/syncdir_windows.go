package atomicfile

// SyncDir is a no-op on Windows: NTFS journals renames, and directories
// cannot be opened for FlushFileBuffers without backup semantics.
func SyncDir(dir string) error { return nil }
