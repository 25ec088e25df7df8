package vfs

import (
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/pkg/sftp"
)

// DefaultMaxHandles bounds the open handles of one session when
// Shared.MaxHandles is 0.
const DefaultMaxHandles = 64

// limited serves the session's handlers with its limits: at most
// Shared.MaxHandles files and directories open at once, and no offset a
// client sends reaches a file unchecked. The open handles of a session
// are what pkg/sftp holds for it (a request each, a descriptor for an
// upload or a response), so the limit bounds its memory and descriptors.
type limited struct{ *FS }

func (fsys *FS) maxHandles() int {
	if fsys.area.MaxHandles > 0 {
		return fsys.area.MaxHandles
	}
	return DefaultMaxHandles
}

// holdHandle counts a new handle of the session, or refuses it.
func (fsys *FS) holdHandle() (func(), error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if max := fsys.maxHandles(); fsys.handles >= max {
		fsys.refusedHandles++
		if fsys.refusedHandles == 1 || fsys.refusedHandles%1000 == 0 {
			fsys.log.Warn("handle refused: session at its limit", "max", max, "refused", fsys.refusedHandles)
		}
		return nil, &sftpError{sftp.ErrSSHFxFailure, fmt.Sprintf("Ouverture refusée : %d fichiers ou répertoires sont déjà ouverts "+
			"dans cette session (au plus %d à la fois). Fermez-en avant d'en ouvrir d'autres.", fsys.handles, max)}
	}
	fsys.handles++
	var once sync.Once
	return func() {
		once.Do(func() {
			fsys.mu.Lock()
			fsys.handles--
			fsys.mu.Unlock()
		})
	}, nil
}

// OpenHandles returns the number of handles the session holds.
func (fsys *FS) OpenHandles() int {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.handles
}

func (l limited) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	release, err := l.holdHandle()
	if err != nil {
		return nil, err
	}
	rd, err := l.FS.Fileread(r)
	if err != nil {
		release()
		return nil, err
	}
	return &readHandle{r: rd, release: release}, nil
}

func (l limited) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return l.OpenFile(r)
}

func (l limited) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	release, err := l.holdHandle()
	if err != nil {
		return nil, err
	}
	f, err := l.openUpload(r)
	if err != nil {
		release()
		return nil, err
	}
	return &writeHandle{uploadFile: f, release: release}, nil
}

// Filelist counts directory handles (List); Stat and Readlink hold none.
func (l limited) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	if r.Method != "List" {
		return l.FS.Filelist(r)
	}
	release, err := l.holdHandle()
	if err != nil {
		return nil, err
	}
	la, err := l.FS.Filelist(r)
	if err != nil {
		release()
		return nil, err
	}
	return &dirHandle{ListerAt: la, release: release}, nil
}

// errReadOffset refuses a read at an offset of 2^63 or more: pkg/sftp
// hands the client's unsigned 64-bit offset over as an int64, negative
// then.
var errReadOffset = &sftpError{sftp.ErrSSHFxFailure, "Lecture refusée : position de lecture hors limites (2^63 octets ou plus)"}

// readHandle is an open file of /retrait or /historique.
type readHandle struct {
	r       io.ReaderAt
	release func()
}

func (h *readHandle) ReadAt(p []byte, off int64) (int, error) {
	if err := checkReadOffset(off, len(p)); err != nil {
		return 0, err
	}
	return h.r.ReadAt(p, off)
}

// checkReadOffset refuses offsets of 2^63 or more and answers EOF where
// off+n would overflow (no file of the tree comes near), so that the sum
// is never computed by the system (pread answers EINVAL).
func checkReadOffset(off int64, n int) error {
	switch {
	case off < 0:
		return errReadOffset
	case off > math.MaxInt64-int64(n):
		return io.EOF
	}
	return nil
}

func (h *readHandle) Close() error {
	defer h.release()
	if c, ok := h.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// writeHandle is an open upload. Its offsets are checked by the upload
// (pigp.Upload.WriteAt and Truncate refuse any beyond the size limit,
// the negative ones included, before adding to them).
type writeHandle struct {
	*uploadFile
	release func()
}

func (h *writeHandle) ReadAt(p []byte, off int64) (int, error) {
	if err := checkReadOffset(off, len(p)); err != nil {
		return 0, err
	}
	return h.uploadFile.ReadAt(p, off)
}

func (h *writeHandle) Close() error {
	defer h.release()
	return h.uploadFile.Close()
}

// dirHandle is an open directory listing.
type dirHandle struct {
	sftp.ListerAt
	release func()
}

func (h *dirHandle) Close() error {
	h.release()
	return nil
}
