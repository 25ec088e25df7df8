package vfs

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp/exchange"
)

// Filelist answers List, Stat and Readlink.
func (fsys *FS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	dir, name, err := split(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		if name != "" {
			return nil, &sftpError{sftp.ErrSSHFxFailure, "Ce n'est pas un répertoire"}
		}
		infos, err := fsys.list(r, dir)
		if err != nil {
			return nil, fsys.toSFTP("list", r.Filepath, err)
		}
		return listerAt(infos), nil
	case "Stat":
		fi, err := fsys.stat(r, dir, name)
		if err != nil {
			return nil, fsys.toSFTP("stat", r.Filepath, err)
		}
		return listerAt{fi}, nil
	case "Readlink":
		return nil, &sftpError{sftp.ErrSSHFxFailure, "Ce n'est pas un lien symbolique"}
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat is Stat: the tree has no links.
func (fsys *FS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	r.Method = "Stat"
	return fsys.Filelist(r)
}

// RealPath resolves p against the root; the result never leaves the tree.
func (fsys *FS) RealPath(p string) (string, error) {
	dir, name, err := split(p)
	if err != nil {
		// Clients resolve paths before creating them: answer the cleaned
		// path inside the tree and let the operation itself refuse.
		return cleanAbs(p), nil
	}
	switch {
	case dir == "":
		return "/", nil
	case name == "":
		return "/" + dir, nil
	}
	return "/" + dir + "/" + name, nil
}

func (fsys *FS) list(r *sftp.Request, dir string) ([]os.FileInfo, error) {
	ctx := ctxOf(r)
	switch dir {
	case "":
		return []os.FileInfo{fsys.dirInfo(DirDepot), fsys.dirInfo(DirRetrait), fsys.dirInfo(DirHistorique)}, nil
	case DirDepot:
		var out []os.FileInfo
		seen := map[string]bool{}
		fsys.mu.Lock()
		for name, u := range fsys.staging {
			out = append(out, &fileInfo{name: name, size: u.Size(), mode: 0o644, mtime: fsys.svc.Now()})
			seen[name] = true
		}
		fsys.mu.Unlock()
		ds, err := fsys.svc.PendingDeposits(ctx, fsys.caller)
		if err != nil {
			return nil, err
		}
		for _, d := range ds { // newest first: the first of a name wins
			if !seen[d.ExternalName] {
				seen[d.ExternalName] = true
				out = append(out, &fileInfo{name: d.ExternalName, size: d.Size, mode: 0o444, mtime: d.DepositedAt})
			}
		}
		return out, nil
	case DirRetrait:
		rs, err := fsys.svc.Responses(ctx, fsys.caller)
		if err != nil {
			return nil, err
		}
		out := make([]os.FileInfo, 0, len(rs))
		for _, resp := range rs {
			out = append(out, &fileInfo{name: resp.Name, size: resp.Size, mode: 0o444, mtime: resp.AvailableAt})
		}
		return out, nil
	case DirHistorique:
		var out []os.FileInfo
		for _, name := range []string{exchange.DepositsCSV, exchange.DownloadsCSV} {
			h, err := fsys.historyFile(r, name)
			if err != nil {
				return nil, err
			}
			out = append(out, &fileInfo{name: name, size: int64(len(h.data)), mode: 0o444, mtime: h.at})
		}
		return out, nil
	}
	return nil, errNotFound
}

func (fsys *FS) stat(r *sftp.Request, dir, name string) (os.FileInfo, error) {
	if name == "" {
		if dir == "" {
			return &fileInfo{name: "/", mode: fs.ModeDir | 0o555, mtime: fsys.start}, nil
		}
		return fsys.dirInfo(dir), nil
	}
	if dir == DirHistorique {
		if name != exchange.DepositsCSV && name != exchange.DownloadsCSV {
			return nil, errNotFound
		}
		h, err := fsys.historyFile(r, name)
		if err != nil {
			return nil, err
		}
		return &fileInfo{name: name, size: int64(len(h.data)), mode: 0o444, mtime: h.at}, nil
	}
	if dir == DirDepot {
		fsys.mu.Lock()
		u := fsys.inflight[name]
		if u == nil {
			u = fsys.staging[name]
		}
		fsys.mu.Unlock()
		if u != nil {
			return &fileInfo{name: name, size: u.Size(), mode: 0o644, mtime: fsys.svc.Now()}, nil
		}
	}
	infos, err := fsys.list(r, dir)
	if err != nil {
		return nil, err
	}
	for _, fi := range infos {
		if fi.Name() == name {
			return fi, nil
		}
	}
	return nil, errNotFound
}

// historyFile returns the generated listing name, reusing a recent one.
func (fsys *FS) historyFile(r *sftp.Request, name string) (historyFile, error) {
	now := fsys.svc.Now()
	fsys.mu.Lock()
	h, ok := fsys.history[name]
	fsys.mu.Unlock()
	if ok && now.Sub(h.at) < historyTTL && now.Sub(h.at) >= 0 {
		return h, nil
	}
	var data []byte
	var err error
	if name == exchange.DepositsCSV {
		data, err = fsys.svc.DepositsCSV(ctxOf(r), fsys.caller)
	} else {
		data, err = fsys.svc.DownloadsCSV(ctxOf(r), fsys.caller)
	}
	if err != nil {
		return h, err
	}
	h = historyFile{data: data, at: now}
	fsys.mu.Lock()
	fsys.history[name] = h
	fsys.mu.Unlock()
	return h, nil
}

// Fileread opens a file for reading: a response of /retrait or a listing
// of /historique.
func (fsys *FS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	dir, name, err := split(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch {
	case name == "":
		return nil, &sftpError{sftp.ErrSSHFxFailure, "Impossible de lire un répertoire"}
	case dir == DirRetrait:
		rr, err := fsys.svc.OpenResponse(ctxOf(r), fsys.caller, name)
		if err != nil {
			return nil, fsys.toSFTP("read", r.Filepath, err)
		}
		return rr, nil
	case dir == DirHistorique:
		if name != exchange.DepositsCSV && name != exchange.DownloadsCSV {
			return nil, errNotFound
		}
		h, err := fsys.historyFile(r, name)
		if err != nil {
			return nil, fsys.toSFTP("read", r.Filepath, err)
		}
		return bytes.NewReader(h.data), nil
	}
	return nil, errDepotRead
}

// Filewrite opens an upload into /depot. The name is checked here, so that
// every client sees the refusal at open.
func (fsys *FS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return fsys.openUpload(r)
}

// OpenFile is Filewrite for clients that open read-write.
func (fsys *FS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return fsys.openUpload(r)
}

func (fsys *FS) openUpload(r *sftp.Request) (*uploadFile, error) {
	dir, name, err := split(r.Filepath)
	if err != nil {
		return nil, errWriteDepot
	}
	if dir != DirDepot || name == "" {
		if dir == DirRetrait || dir == DirHistorique {
			return nil, errReadOnly
		}
		return nil, errWriteDepot
	}
	staging := strings.HasSuffix(name, StagingSuffix)
	if staging {
		fsys.mu.Lock()
		u := fsys.staging[name]
		delete(fsys.staging, name)
		fsys.mu.Unlock()
		if u != nil {
			if !r.Pflags().Trunc { // resume: go on writing the same upload
				fsys.track(name, u)
				return &uploadFile{fsys: fsys, u: u, name: name, staging: name}, nil
			}
			u.Abort()
		}
	}
	u, err := fsys.svc.BeginDeposit(ctxOf(r), fsys.caller, strings.TrimSuffix(name, StagingSuffix))
	if err != nil {
		fsys.log.Info("upload refused", "name", name, "reason", err)
		return nil, fsys.toSFTP("open", r.Filepath, err)
	}
	f := &uploadFile{fsys: fsys, u: u, name: name}
	if staging {
		f.staging = name
	}
	fsys.track(name, u)
	return f, nil
}

// uploadFile is an open upload handle.
type uploadFile struct {
	fsys    *FS
	u       *exchange.Upload
	name    string // the name it was opened under
	staging string // the staging name, or "" for a direct upload

	mu          sync.Mutex
	transferErr error
}

func (f *uploadFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.u.WriteAt(p, off)
	return n, f.fsys.toSFTP("write", f.u.Name(), err)
}

func (f *uploadFile) ReadAt(p []byte, off int64) (int, error) { return f.u.ReadAt(p, off) }

// TransferError is called by pkg/sftp when the connection dropped with the
// handle open: the upload did not complete.
func (f *uploadFile) TransferError(err error) {
	f.mu.Lock()
	f.transferErr = err
	f.mu.Unlock()
}

// Close ends the upload: a direct upload becomes a deposit now (the client
// gets OK only once it is durable); a staging upload waits for its rename.
func (f *uploadFile) Close() error {
	f.mu.Lock()
	terr := f.transferErr
	f.mu.Unlock()
	fsys := f.fsys
	fsys.untrack(f.name, f.u)
	if terr != nil {
		f.u.Abort()
		fsys.log.Warn("upload interrupted, discarded", "name", f.u.Name(), "error", terr)
		return nil
	}
	if err := f.u.Failed(); err != nil {
		f.u.Abort()
		return fsys.toSFTP("close", f.u.Name(), err)
	}
	if f.staging != "" {
		fsys.mu.Lock()
		if old := fsys.staging[f.staging]; old != nil && old != f.u {
			old.Abort()
		}
		fsys.staging[f.staging] = f.u
		fsys.mu.Unlock()
		return nil
	}
	if _, err := f.u.Commit(context.Background()); err != nil {
		return fsys.toSFTP("close", f.u.Name(), err)
	}
	return nil
}

// Filecmd answers Setstat, Rename, Remove, Mkdir, Rmdir, Symlink and Link.
func (fsys *FS) Filecmd(r *sftp.Request) error {
	dir, name, err := split(r.Filepath)
	if err != nil && r.Method != "Mkdir" {
		return err
	}
	switch r.Method {
	case "Setstat":
		return fsys.setstat(r, dir, name)
	case "Rename", "PosixRename":
		return fsys.rename(r, dir, name)
	case "Remove":
		return fsys.remove(r, dir, name)
	}
	return errDenied // Mkdir, Rmdir, Symlink, Link
}

// PosixRename is Rename: a deposit name never replaces anything.
func (fsys *FS) PosixRename(r *sftp.Request) error { return fsys.Filecmd(r) }

func (fsys *FS) setstat(r *sftp.Request, dir, name string) error {
	if dir != DirDepot || name == "" {
		if name == "" {
			return nil // directories: accepted without effect
		}
		return errReadOnly
	}
	if r.AttrFlags().Size {
		fsys.mu.Lock()
		u := fsys.staging[name]
		if u == nil {
			u = fsys.inflight[name]
		}
		fsys.mu.Unlock()
		if u != nil {
			return fsys.toSFTP("truncate", name, u.Truncate(int64(r.Attributes().Size)))
		}
	}
	return nil // times and permissions of uploads: accepted without effect
}

func (fsys *FS) rename(r *sftp.Request, dir, name string) error {
	tdir, tname, err := split(r.Target)
	if err != nil {
		return errDenied
	}
	if dir != DirDepot || tdir != DirDepot || name == "" || tname == "" {
		return errDenied
	}
	fsys.mu.Lock()
	u := fsys.staging[name]
	if u != nil {
		delete(fsys.staging, name)
	}
	fsys.mu.Unlock()
	if u == nil {
		return errNotFound
	}
	if tname != u.Name() {
		u.Abort()
		return &sftpError{sftp.ErrSSHFxPermissionDenied, "Renommage refusé : le fichier temporaire " + name + " ne peut être renommé qu'en " + u.Name()}
	}
	// The name is checked again at the rename that makes it final.
	if _, err := fsys.svc.CheckDepositName(fsys.caller, tname); err != nil {
		u.Abort()
		return fsys.toSFTP("rename", r.Target, err)
	}
	if _, err := u.Commit(ctxOf(r)); err != nil {
		return fsys.toSFTP("rename", r.Target, err)
	}
	return nil
}

func (fsys *FS) remove(r *sftp.Request, dir, name string) error {
	switch {
	case name == "":
		return errDenied
	case dir == DirRetrait:
		return fsys.toSFTP("remove", r.Filepath, fsys.svc.RemoveResponse(ctxOf(r), fsys.caller, name))
	case dir == DirHistorique:
		return errReadOnly
	}
	fsys.mu.Lock()
	u := fsys.staging[name]
	delete(fsys.staging, name)
	fsys.mu.Unlock()
	if u != nil {
		u.Abort()
		return nil
	}
	// A deposit cannot be taken back; removing its name (WinSCP does so
	// before renaming a staging file) is accepted and changes nothing.
	if _, err := fsys.stat(r, dir, name); err != nil {
		return fsys.toSFTP("remove", r.Filepath, err)
	}
	fsys.log.Info("remove of a deposited name ignored", "name", name)
	return nil
}

// track records an open upload so that FSTAT and FSETSTAT, which pkg/sftp
// turns into requests by path, find it.
func (fsys *FS) track(name string, u *exchange.Upload) {
	fsys.mu.Lock()
	fsys.inflight[name] = u
	fsys.mu.Unlock()
}

func (fsys *FS) untrack(name string, u *exchange.Upload) {
	fsys.mu.Lock()
	if fsys.inflight[name] == u {
		delete(fsys.inflight, name)
	}
	fsys.mu.Unlock()
}

func cleanAbs(p string) string { return path.Clean("/" + p) }
