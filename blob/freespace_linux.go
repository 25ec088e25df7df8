package blob

import "golang.org/x/sys/unix"

// statSpace returns the size and the space available to unprivileged
// users of the filesystem holding dir.
func statSpace(dir string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Space{}, err
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return Space{Known: true, Total: st.Blocks * bs, Free: st.Bavail * bs}, nil
}
