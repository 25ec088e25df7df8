package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
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
		// The deposits waiting for processing; staging uploads are not
		// deposits and are not listed (they stay STAT-able).
		var out []os.FileInfo
		seen := map[string]bool{}
		ds, err := fsys.ex.PendingDeposits(ctx, fsys.caller)
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
		rs, err := fsys.ex.Responses(ctx, fsys.caller)
		if err != nil {
			return nil, err
		}
		out := make([]os.FileInfo, 0, len(rs))
		for _, resp := range rs {
			out = append(out, &fileInfo{name: resp.Name, size: resp.Size, mode: 0o444, mtime: resp.AvailableAt})
		}
		return out, nil
	case DirDocumentation:
		var out []os.FileInfo
		for _, name := range fsys.area.documentNames() {
			out = append(out, &fileInfo{name: name, size: int64(len(fsys.area.Documentation[name])), mode: 0o444, mtime: fsys.start})
		}
		return out, nil
	case DirHistorique:
		out := []os.FileInfo{fsys.dirInfo("documentation")}
		for _, name := range []string{pigp.DepositsCSV, pigp.DownloadsCSV} {
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
		if name != pigp.DepositsCSV && name != pigp.DownloadsCSV {
			return nil, errNotFound
		}
		h, err := fsys.historyFile(r, name)
		if err != nil {
			return nil, err
		}
		return &fileInfo{name: name, size: int64(len(h.data)), mode: 0o444, mtime: h.at}, nil
	}
	if dir == DirDepot {
		return fsys.statDepot(ctxOf(r), name)
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
	now := fsys.ex.Now()
	fsys.mu.Lock()
	h, ok := fsys.history[name]
	fsys.mu.Unlock()
	if ok && now.Sub(h.at) < historyTTL && now.Sub(h.at) >= 0 {
		return h, nil
	}
	var data []byte
	var err error
	if name == pigp.DepositsCSV {
		data, err = fsys.ex.DepositsCSV(ctxOf(r), fsys.caller)
	} else {
		data, err = fsys.ex.DownloadsCSV(ctxOf(r), fsys.caller)
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
		rr, err := fsys.ex.OpenResponse(ctxOf(r), fsys.caller, name)
		if err != nil {
			return nil, fsys.toSFTP("read", r.Filepath, err)
		}
		return &readFile{fsys: fsys, rr: rr, path: r.Filepath}, nil
	case dir == DirHistorique:
		if name != pigp.DepositsCSV && name != pigp.DownloadsCSV {
			return nil, errNotFound
		}
		h, err := fsys.historyFile(r, name)
		if err != nil {
			return nil, fsys.toSFTP("read", r.Filepath, err)
		}
		return bytes.NewReader(h.data), nil
	case dir == DirDocumentation:
		b, ok := fsys.area.Documentation[name]
		if !ok {
			return nil, errNotFound
		}
		return bytes.NewReader(b), nil
	}
	return nil, errDepotRead
}

// readFile is an open response of /retrait. Its errors go through the
// session's error mapping: the client reads a French message, never a
// server path or an internal error (those go to the log).
type readFile struct {
	fsys *FS
	rr   pigp.ResponseReader
	path string
}

func (f *readFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.rr.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, f.fsys.toSFTP("read", f.path, err)
	}
	return n, err
}

// Close records the download when the whole file was read; a failure to
// record it is reported to the client.
func (f *readFile) Close() error {
	return f.fsys.toSFTP("close", f.path, f.rr.Close())
}

// statDepot answers STAT of a /depot name: an upload open in this
// session, a staged upload of the account, or a deposit still pending or
// made within DepositGrace (with the mtime a client set, if any).
func (fsys *FS) statDepot(ctx context.Context, name string) (os.FileInfo, error) {
	now := fsys.ex.Now()
	fsys.mu.Lock()
	u := fsys.inflight[name]
	fsys.mu.Unlock()
	if u != nil {
		size, err := u.Size()
		if err != nil {
			return nil, err
		}
		return &fileInfo{name: name, size: size, mode: 0o644, mtime: now}, nil
	}
	if _, ok := StagingTarget(name); ok {
		if s := fsys.area.get(fsys.key(name)); s != nil {
			size, err := s.u.Size()
			if err != nil {
				return nil, err
			}
			return &fileInfo{name: name, size: size, mode: 0o644, mtime: s.lastTouched()}, nil
		}
		return nil, errNotFound
	}
	d, err := fsys.deposit(ctx, name)
	if err != nil {
		return nil, err
	}
	mtime := d.DepositedAt
	if t, ok := fsys.area.mtimeOf(fsys.key(name), now); ok {
		mtime = t
	}
	return &fileInfo{name: name, size: d.Size, mode: 0o444, mtime: mtime}, nil
}

// deposit returns the newest of the caller's deposits named name that is
// recent (DepositGrace) or still pending.
func (fsys *FS) deposit(ctx context.Context, name string) (*pigp.Deposit, error) {
	recent, err := fsys.ex.RecentDeposits(ctx, fsys.caller, fsys.ex.Now().Add(-DepositGrace))
	if err != nil {
		return nil, err
	}
	for _, d := range recent { // newest first
		if d.ExternalName == name {
			return d, nil
		}
	}
	if d := fsys.area.retriedDeposit(fsys.key(name), fsys.ex.Now()); d != nil {
		return d, nil
	}
	pending, err := fsys.ex.PendingDeposits(ctx, fsys.caller)
	if err != nil {
		return nil, err
	}
	for _, d := range pending {
		if d.ExternalName == name {
			return d, nil
		}
	}
	return nil, errNotFound
}

func (fsys *FS) key(name string) accountName {
	return accountName{account: fsys.caller.AccountID, name: name}
}

// LookupUserName shows the caller as the owner in listings' long names
// (WinSCP treats files owned by someone else differently).
func (fsys *FS) LookupUserName(string) string { return fsys.caller.Login }

// LookupGroupName shows the caller as the group in listings' long names.
func (fsys *FS) LookupGroupName(string) string { return fsys.caller.Login }

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
		if dir == DirRetrait || dir == DirHistorique || dir == DirDocumentation {
			return nil, errReadOnly
		}
		return nil, errWriteDepot
	}
	final, staging := StagingTarget(name)
	if !staging {
		final = name
	}
	// The name comes first: a refused name gets its own message, whatever
	// the open flags.
	if _, err := fsys.ex.CheckDepositName(ctxOf(r), fsys.caller, final); err != nil {
		fsys.log.Info("upload refused", pigp.RefusedNameAttrs(name, err)...)
		return nil, fsys.toSFTP("open", r.Filepath, err)
	}
	// Then the disk: below its minimum free space, every upload (a resume
	// too) is refused at open with a French message.
	if err := fsys.ex.CheckSpace(); err != nil {
		return nil, fsys.toSFTP("open", r.Filepath, err)
	}
	if staging {
		return fsys.openStaging(ctxOf(r), name, final, r.Pflags())
	}
	return fsys.openDirect(ctxOf(r), name, r.Pflags())
}

// openDirect opens an upload under its final name; it becomes a deposit
// when the handle is closed after a complete transfer. A deposit cannot be
// resumed or appended to (that would deposit only the end of a file); EXCL
// is refused when the name exists.
func (fsys *FS) openDirect(ctx context.Context, name string, flags sftp.FileOpenFlags) (*uploadFile, error) {
	resume := !flags.Trunc && (flags.Append || !flags.Creat)
	if flags.Excl || resume {
		_, err := fsys.statDepot(ctx, name)
		if err != nil && !errors.Is(err, sftp.ErrSSHFxNoSuchFile) {
			return nil, fsys.toSFTP("open", name, err)
		}
		exists := err == nil
		switch {
		case exists && flags.Excl:
			return nil, errExists(name)
		case exists && resume:
			return nil, errNoResume(name)
		case !exists && !flags.Creat:
			return nil, errNotFound
		}
	}
	u, err := fsys.ex.BeginDeposit(ctx, fsys.caller, name)
	if err != nil {
		fsys.log.Info("upload refused", pigp.RefusedNameAttrs(name, err)...)
		return nil, fsys.toSFTP("open", name, err)
	}
	fsys.track(name, u)
	return &uploadFile{ctx: context.WithoutCancel(ctx), fsys: fsys, u: u, name: name}, nil
}

// openStaging opens a staging upload. Without TRUNC, an existing staged
// upload of the account is resumed (WinSCP, FileZilla without CREAT, with
// or without APPEND: writes land at the offsets the client gives, from the
// size it read); with TRUNC it starts again.
func (fsys *FS) openStaging(ctx context.Context, name, final string, flags sftp.FileOpenFlags) (*uploadFile, error) {
	a, key, now := fsys.area, fsys.key(name), fsys.ex.Now()
	a.mu.Lock()
	s := a.staged[key]
	switch {
	case s != nil && flags.Excl:
		a.mu.Unlock()
		return nil, errExists(name)
	case s != nil && !flags.Trunc:
		f := &uploadFile{ctx: context.WithoutCancel(ctx), fsys: fsys, u: s.u, name: name, stage: s}
		if s.owner != nil { // a handle of a dropped connection not noticed yet
			s.owner.detach()
		}
		s.owner = f
		s.touch(now)
		a.mu.Unlock()
		s.u.SetCaller(fsys.caller)
		size, _ := s.u.Size()
		fsys.log.Info("staged upload resumed", "name", name, "size", size)
		return f, nil
	case s == nil && !flags.Creat:
		a.mu.Unlock()
		return nil, errNotFound
	}
	a.mu.Unlock()

	u, err := fsys.ex.BeginDeposit(ctx, fsys.caller, final)
	if err != nil {
		fsys.log.Info("upload refused", pigp.RefusedNameAttrs(name, err)...)
		return nil, fsys.toSFTP("open", name, err)
	}
	s = &staged{u: u}
	s.touch(now)
	f := &uploadFile{ctx: context.WithoutCancel(ctx), fsys: fsys, u: u, name: name, stage: s}
	s.owner = f
	a.mu.Lock()
	old := a.staged[key]
	a.staged[key] = s
	if old != nil && old.owner != nil {
		old.owner.detach()
		old.owner = nil
	}
	a.mu.Unlock()
	if old != nil {
		old.u.Abort()
	}
	return f, nil
}

// uploadFile is an open upload handle.
type uploadFile struct {
	// ctx is the context of the open request, without its cancellation:
	// a direct upload closed after a complete transfer becomes a deposit
	// even if the client leaves as it closes.
	ctx   context.Context
	fsys  *FS
	u     pigp.Upload
	name  string  // the name it was opened under
	stage *staged // the staged upload, or nil for a direct upload

	mu          sync.Mutex
	transferErr error
	detached    bool // another handle took the staged upload over
}

func (f *uploadFile) detach() {
	f.mu.Lock()
	f.detached = true
	f.mu.Unlock()
}

func (f *uploadFile) WriteAt(p []byte, off int64) (int, error) {
	if f.stage != nil {
		f.mu.Lock()
		detached := f.detached
		f.mu.Unlock()
		if detached {
			return 0, errTakenOver
		}
		defer f.stage.touch(f.fsys.ex.Now())
	}
	n, err := f.u.WriteAt(p, off)
	return n, f.fsys.toSFTP("write", f.u.Name(), err)
}

// ReadAt reads back an upload (clients that open read-write), through the
// session's error mapping.
func (f *uploadFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.u.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, f.fsys.toSFTP("read", f.u.Name(), err)
	}
	return n, err
}

// TransferError is called by pkg/sftp when the connection dropped with the
// handle open: the upload did not complete.
func (f *uploadFile) TransferError(err error) {
	f.mu.Lock()
	f.transferErr = err
	f.mu.Unlock()
}

// Close ends the upload: a direct upload becomes a deposit now (the client
// gets OK only once it is durable) or, if interrupted, is discarded; a
// staging upload waits for its rename or, if interrupted, for a resume.
func (f *uploadFile) Close() error {
	f.mu.Lock()
	terr := f.transferErr
	f.mu.Unlock()
	fsys := f.fsys
	if f.stage != nil {
		return f.closeStaged(terr)
	}
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
	d, err := f.u.Commit(f.ctx)
	if err != nil {
		return fsys.toSFTP("close", f.u.Name(), err)
	}
	fsys.area.committed(fsys.key(f.name), d, fsys.ex.Now())
	return nil
}

// closeStaged releases a staging upload. An interrupted one is kept, cut
// back to what was written contiguously, for a resume.
func (f *uploadFile) closeStaged(terr error) error {
	fsys, a, key := f.fsys, f.fsys.area, f.fsys.key(f.name)
	failed := f.u.Failed()
	a.mu.Lock()
	if f.stage.owner != f { // taken over, replaced or removed meanwhile
		a.mu.Unlock()
		return nil
	}
	f.stage.owner = nil
	keep := failed == nil && (terr == nil || f.u.KeepWritten())
	if !keep && a.staged[key] == f.stage {
		delete(a.staged, key)
	}
	a.mu.Unlock()
	f.stage.touch(fsys.ex.Now())
	switch {
	case failed != nil:
		f.u.Abort()
		return fsys.toSFTP("close", f.name, failed)
	case terr != nil && keep:
		size, _ := f.u.Size()
		fsys.log.Info("staged upload interrupted, kept for a resume", "name", f.name, "size", size)
	case terr != nil:
		f.u.Abort()
		fsys.log.Warn("staged upload interrupted, discarded", "name", f.name, "error", terr)
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

// PosixRename is Rename: a staging file becomes the deposit it stands for.
func (fsys *FS) PosixRename(r *sftp.Request) error { return fsys.Filecmd(r) }

// upload returns the open or staged upload of a /depot name, or nil.
func (fsys *FS) upload(name string) pigp.Upload {
	fsys.mu.Lock()
	u := fsys.inflight[name]
	fsys.mu.Unlock()
	if u != nil {
		return u
	}
	if s := fsys.area.get(fsys.key(name)); s != nil {
		return s.u
	}
	return nil
}

// setstat accepts times and permissions on directories and on the caller's
// uploads and deposits; it truncates uploads (scp's FSETSTAT(size)). The
// time set on a deposit is shown by STAT during DepositGrace.
func (fsys *FS) setstat(r *sftp.Request, dir, name string) error {
	if name == "" {
		return nil // directories: accepted without effect
	}
	if dir != DirDepot {
		return errReadOnly
	}
	flags, attrs := r.AttrFlags(), r.Attributes()
	if u := fsys.upload(name); u != nil {
		if flags.Size {
			return fsys.toSFTP("truncate", name, u.Truncate(int64(attrs.Size)))
		}
	} else {
		fi, err := fsys.statDepot(ctxOf(r), name)
		if err != nil {
			return fsys.toSFTP("setstat", r.Filepath, err)
		}
		if flags.Size && int64(attrs.Size) != fi.Size() {
			return &sftpError{sftp.ErrSSHFxPermissionDenied, "Modification refusée : un dépôt reçu ne peut pas être modifié"}
		}
	}
	if flags.Acmodtime {
		now := fsys.ex.Now()
		fsys.area.setMtime(fsys.key(name), time.Unix(int64(attrs.Mtime), 0).UTC(), now)
	}
	return nil
}

func (fsys *FS) rename(r *sftp.Request, dir, name string) error {
	tdir, tname, err := split(r.Target)
	if err != nil || dir != DirDepot || tdir != DirDepot || name == "" || tname == "" {
		return errDenied
	}
	if _, staging := StagingTarget(name); !staging {
		if _, err := fsys.statDepot(ctxOf(r), name); err != nil {
			return fsys.toSFTP("rename", r.Filepath, err)
		}
		return &sftpError{sftp.ErrSSHFxPermissionDenied, "Renommage refusé : un dépôt reçu ne peut pas être renommé"}
	}
	s, busy := fsys.area.take(fsys.key(name))
	switch {
	case busy:
		return errBusy(name)
	case s == nil:
		return errNotFound
	}
	final := s.u.Name()
	if tname != final {
		s.u.Abort()
		return &sftpError{sftp.ErrSSHFxPermissionDenied, "Renommage refusé : le fichier temporaire " + name + " ne peut être renommé qu'en " + final}
	}
	// The name is checked again at the rename that makes it final.
	if _, err := fsys.ex.CheckDepositName(ctxOf(r), fsys.caller, tname); err != nil {
		s.u.Abort()
		return fsys.toSFTP("rename", r.Target, err)
	}
	s.u.SetCaller(fsys.caller)
	d, err := s.u.Commit(ctxOf(r))
	if err != nil {
		return fsys.toSFTP("rename", r.Target, err)
	}
	fsys.area.committed(fsys.key(tname), d, fsys.ex.Now())
	return nil
}

func (fsys *FS) remove(r *sftp.Request, dir, name string) error {
	switch {
	case name == "":
		return errDenied
	case dir == DirRetrait:
		return fsys.toSFTP("remove", r.Filepath, fsys.ex.RemoveResponse(ctxOf(r), fsys.caller, name))
	case dir == DirHistorique, dir == DirDocumentation:
		return errReadOnly
	}
	if _, staging := StagingTarget(name); staging {
		a, key := fsys.area, fsys.key(name)
		a.mu.Lock()
		s := a.staged[key]
		if s != nil {
			delete(a.staged, key)
			if s.owner != nil {
				s.owner.detach()
				s.owner = nil
			}
		}
		a.mu.Unlock()
		if s == nil {
			return errNotFound
		}
		s.u.Abort()
		fsys.log.Info("staged upload removed", "name", name)
		return nil
	}
	// A deposit cannot be taken back; removing its name (WinSCP does so
	// before renaming a staging file) is answered OK and changes nothing.
	if _, err := fsys.statDepot(ctxOf(r), name); err != nil {
		return fsys.toSFTP("remove", r.Filepath, err)
	}
	fsys.log.Info("remove of a deposited name answered OK, the deposit stands", "name", name,
		"login", fsys.caller.Login, "ip", fsys.caller.RemoteIP)
	return nil
}

// track records an open direct upload so that FSTAT and FSETSTAT, which
// pkg/sftp turns into requests by path, find it.
func (fsys *FS) track(name string, u pigp.Upload) {
	fsys.mu.Lock()
	fsys.inflight[name] = u
	fsys.mu.Unlock()
}

func (fsys *FS) untrack(name string, u pigp.Upload) {
	fsys.mu.Lock()
	if fsys.inflight[name] == u {
		delete(fsys.inflight, name)
	}
	fsys.mu.Unlock()
}

func cleanAbs(p string) string { return path.Clean("/" + p) }
