//go:build darwin || freebsd || dragonfly

package platform

import "golang.org/x/sys/unix"

func freeDisk(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	// Field types differ between these systems (Bavail is signed on
	// FreeBSD: it goes negative when root's reserve is in use).
	if int64(st.Bavail) <= 0 {
		return 0, nil
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
