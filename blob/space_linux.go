package blob

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// FreeSpace returns the space available to the service on the store's
// filesystem and its size, in bytes.
func (s *Store) FreeSpace() (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// processAlive reports whether a process with that pid runs on this host.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
