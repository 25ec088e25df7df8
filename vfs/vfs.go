// Package vfs serves the virtual tree of one SFTP session through
// pkg/sftp's request server: /depot (write-only deposit box), /retrait (the
// responses of the caller's SIRETs) and /historique (generated CSV
// listings). Nothing of the real disk is ever visible: every path is
// resolved against this fixed tree and every answer comes from the exchange.
package vfs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// Top-level directories.
const (
	DirDepot      = "depot"
	DirRetrait    = "retrait"
	DirHistorique = "historique"
	// DirDocumentation holds the contract's XSDs and the cahier des
	// charges, read-only, under /historique (the root lists exactly
	// depot, retrait and historique).
	DirDocumentation = "historique/documentation"
)

// historyTTL is how long a generated listing is reused within a session, so
// that its size in a listing matches what a following download reads.
const historyTTL = 10 * time.Second

// FS is the file system of one session.
type FS struct {
	svc    *exchange.Service
	caller *pigp.Caller
	log    *slog.Logger
	start  time.Time

	area     *Shared // staged uploads and set mtimes, shared with the account's other sessions
	mu       sync.Mutex
	inflight map[string]*exchange.Upload // direct upload name → upload whose handle is open
	history  map[string]historyFile
	handles  int // open handles (limits.go)
	// refusedHandles counts the handles refused at the limit.
	refusedHandles int
}

type historyFile struct {
	data []byte
	at   time.Time
}

// New returns the file system of caller's session; shared is the state
// the process's sessions share (see NewShared).
func New(svc *exchange.Service, shared *Shared, caller *pigp.Caller, log *slog.Logger) *FS {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsys := &FS{
		svc: svc, caller: caller, start: svc.Now(), area: shared,
		log:      log.With("login", caller.Login, "ip", caller.RemoteIP),
		inflight: map[string]*exchange.Upload{}, history: map[string]historyFile{},
	}
	fsys.area.sweep(fsys.start)
	return fsys
}

// Handlers returns the pkg/sftp handlers of the session.
func (fsys *FS) Handlers() sftp.Handlers {
	l := limited{fsys}
	return sftp.Handlers{FileGet: l, FilePut: l, FileCmd: l, FileList: l}
}

// Close ends the session. Its direct uploads were already closed (and
// discarded if interrupted) by pkg/sftp; its staged uploads stay for the
// account's next session, for StagingTTL.
func (fsys *FS) Close() {
	fsys.area.sweep(fsys.svc.Now())
}

// split resolves p (already cleaned and absolute) into its top directory
// and file name. It rejects anything deeper than /dir/name.
func split(p string) (dir, name string, err error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return "", "", nil
	}
	parts := strings.Split(p[1:], "/")
	if len(parts) >= 2 && parts[0] == DirHistorique && parts[1] == "documentation" {
		switch len(parts) {
		case 2:
			return DirDocumentation, "", nil
		case 3:
			return DirDocumentation, parts[2], nil
		}
		return "", "", errNotFound
	}
	switch {
	case len(parts) > 2:
		return "", "", errNotFound
	case parts[0] != DirDepot && parts[0] != DirRetrait && parts[0] != DirHistorique:
		return "", "", errNotFound
	case len(parts) == 1:
		return parts[0], "", nil
	}
	return parts[0], parts[1], nil
}

// sftpError is an error whose text goes to the client as is, with an SFTP
// status code.
type sftpError struct {
	code error // one of sftp.ErrSSHFx*
	msg  string
}

func (e *sftpError) Error() string { return e.msg }
func (e *sftpError) Unwrap() error { return e.code }

var (
	errNotFound   = &sftpError{sftp.ErrSSHFxNoSuchFile, "Fichier ou répertoire introuvable"}
	errReadOnly   = &sftpError{sftp.ErrSSHFxPermissionDenied, "Opération refusée : ce répertoire est en lecture seule"}
	errWriteDepot = &sftpError{sftp.ErrSSHFxPermissionDenied, "Opération refusée : seuls les dépôts de fichiers d'appel dans /depot sont autorisés"}
	errDenied     = &sftpError{sftp.ErrSSHFxPermissionDenied, "Opération refusée"}
	errDepotRead  = &sftpError{sftp.ErrSSHFxPermissionDenied, "Lecture refusée : /depot est une boîte de dépôt ; les réponses sont dans /retrait"}
	errTakenOver  = &sftpError{sftp.ErrSSHFxFailure, "Envoi interrompu : le fichier temporaire a été repris par une autre connexion"}
)

func errExists(name string) error {
	return &sftpError{sftp.ErrSSHFxFailure, "Le fichier " + name + " existe déjà"}
}

func errNoResume(name string) error {
	return &sftpError{sftp.ErrSSHFxFailure, "Reprise impossible : " + name + " est déjà déposé ; un dépôt ne peut pas être complété, envoyez le fichier entier"}
}

func errBusy(name string) error {
	return &sftpError{sftp.ErrSSHFxFailure, "Le fichier temporaire " + name + " est en cours d'envoi"}
}

// toSFTP maps an error to what the client sees: pigp codes to SFTP status
// codes with their French message; anything else to a generic failure whose
// detail stays in the log.
func (fsys *FS) toSFTP(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var se *sftpError
	if errors.As(err, &se) {
		return se
	}
	msg := pigp.ErrorMessage(err)
	switch pigp.ErrorCode(err) {
	case pigp.ENOTFOUND:
		return &sftpError{sftp.ErrSSHFxNoSuchFile, msg}
	case pigp.EINVALID, pigp.EFORBIDDEN, pigp.EUNAUTHORIZED, pigp.EEXPIRED:
		return &sftpError{sftp.ErrSSHFxPermissionDenied, msg}
	case pigp.ETOOLARGE, pigp.ECONFLICT:
		return &sftpError{sftp.ErrSSHFxFailure, msg}
	case pigp.ELIMIT:
		// A client at one of its limits (uploads of its account, ...):
		// its refusal, not a failure of the server's.
		fsys.log.Info("sftp request refused: limit reached", "op", op, "path", p, "error", err)
		return &sftpError{sftp.ErrSSHFxFailure, msg}
	case pigp.EUNAVAILABLE:
		fsys.log.Warn("sftp request refused: service unavailable", "op", op, "path", p, "error", err)
		return &sftpError{sftp.ErrSSHFxFailure, msg}
	}
	fsys.log.Error("sftp request failed", "op", op, "path", p, "error", err)
	return &sftpError{sftp.ErrSSHFxFailure, msg}
}

func ctxOf(r *sftp.Request) context.Context {
	if ctx := r.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// fileInfo is a virtual os.FileInfo.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

func (fsys *FS) dirInfo(name string) os.FileInfo {
	mode := fs.ModeDir | 0o555
	if name == DirDepot {
		mode = fs.ModeDir | 0o755
	}
	return &fileInfo{name: name, mode: mode, mtime: fsys.start}
}

// listerAt serves a fixed listing.
type listerAt []os.FileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}
