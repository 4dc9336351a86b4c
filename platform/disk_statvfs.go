//go:build solaris || illumos || netbsd

package platform

import "golang.org/x/sys/unix"

// These systems answer statvfs, not statfs.
func freeDisk(dir string) (uint64, error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(dir, &st); err != nil {
		return 0, err
	}
	unit := st.Frsize
	if unit == 0 {
		unit = st.Bsize
	}
	return st.Bavail * unit, nil
}
