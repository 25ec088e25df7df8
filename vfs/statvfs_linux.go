package vfs

import (
	"github.com/pkg/sftp"
)

// statvfsBlock is the block size statvfs@openssh.com reports sizes in.
const statvfsBlock = 4096

// StatVFS answers statvfs@openssh.com (OpenSSH df, rclone about) with the
// free space of the store that receives the deposits: the filesystem's, or
// an S3 store's configured quota. A store without a known limit (S3 without
// a quota) answers zero blocks, "unknown", rather than an error that would
// fail the client's command.
func (fsys *FS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if _, _, err := split(r.Filepath); err != nil {
		return nil, err
	}
	sp, err := fsys.svc.FreeSpace(r.Context())
	if err != nil {
		return nil, fsys.toSFTP("statvfs", r.Filepath, err)
	}
	return &sftp.StatVFS{
		Bsize: statvfsBlock, Frsize: statvfsBlock,
		Blocks: sp.Total / statvfsBlock, Bfree: sp.Free / statvfsBlock, Bavail: sp.Free / statvfsBlock,
		Flag: 0, Namemax: 255,
	}, nil
}
