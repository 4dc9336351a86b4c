package platform

import "golang.org/x/sys/unix"

func freeDisk(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	// Frsize is the unit of the block counts; Bsize is only the preferred
	// I/O size, which differs on some file systems.
	unit := int64(st.Frsize)
	if unit <= 0 {
		unit = int64(st.Bsize)
	}
	return st.Bavail * uint64(unit), nil
}
