//go:build !linux

package blob

// StartWriteback does nothing where sync_file_range does not exist; the
// fsync at commit writes everything.
func (t *Temp) StartWriteback(off, n int64) {}

// syncFS is not available here: the caller fsyncs each directory.
func (s *Store) syncFS() (bool, error) { return false, nil }
