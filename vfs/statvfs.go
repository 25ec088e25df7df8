package vfs

import (
	"errors"

	"github.com/pkg/sftp"
)

// statBlock is the block size statvfs@openssh.com answers in.
const statBlock = 4096

// StatVFS answers statvfs@openssh.com (OpenSSH df, rclone about) with the
// free space of the store that receives the deposits, the same for every
// path of the tree.
func (fsys *FS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if _, _, err := split(r.Filepath); err != nil {
		return nil, err
	}
	free, total, err := fsys.ex.FreeSpace(ctxOf(r))
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, sftp.ErrSSHFxOpUnsupported
	}
	if err != nil {
		return nil, fsys.toSFTP("statvfs", r.Filepath, err)
	}
	return &sftp.StatVFS{
		Bsize: statBlock, Frsize: statBlock,
		Blocks: total / statBlock, Bfree: free / statBlock, Bavail: free / statBlock,
		Namemax: 255,
	}, nil
}
