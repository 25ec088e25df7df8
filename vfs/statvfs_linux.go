package vfs

import (
	"syscall"

	"github.com/pkg/sftp"
)

// StatVFS answers statvfs@openssh.com (OpenSSH df, rclone about) with the
// free space of the store that receives the deposits.
func (fsys *FS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if _, _, err := split(r.Filepath); err != nil {
		return nil, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(fsys.svc.Blobs.Dir(), &st); err != nil {
		return nil, fsys.toSFTP("statvfs", r.Filepath, err)
	}
	return &sftp.StatVFS{
		Bsize: uint64(st.Bsize), Frsize: uint64(st.Frsize),
		Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail,
		Files: st.Files, Ffree: st.Ffree, Favail: st.Ffree,
		Flag: 0, Namemax: 255,
	}, nil
}
