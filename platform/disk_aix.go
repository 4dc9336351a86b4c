package platform

import "golang.org/x/sys/unix"

func freeDisk(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * st.Bsize, nil
}
