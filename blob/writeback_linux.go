package blob

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing [off, off+n) of the file
// to disk now, without waiting, so that the fsync at commit has little left
// to do: a large upload's data goes to disk while the rest still arrives.
func (t *Temp) StartWriteback(off, n int64) {
	unix.SyncFileRange(int(t.File.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// syncFS flushes the filesystem holding the store (syncfs), which makes a
// batch of deletions durable in one call.
func (s *Store) syncFS() (bool, error) {
	d, err := os.Open(s.dir)
	if err != nil {
		return true, err
	}
	defer d.Close()
	return true, unix.Syncfs(int(d.Fd()))
}
