package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
)

// CheckDepositName checks that name is a valid call-file name (contract §1)
// for a SIRET the caller may act for (not as an auditeur, who only reads).
// Errors are EINVALID or EFORBIDDEN with a French message saying why.
// Every refusal is audited (the name is kept literally).
func (s *Service) CheckDepositName(ctx context.Context, caller *pigp.Caller, name string) (apa.CallName, error) {
	n, err := apa.ParseCallName(name, s.now())
	if err == nil {
		err = s.mayActFor(caller, n.SIRET, "dépôt refusé : le compte %s n'est pas habilité pour le SIRET %s")
	}
	if err != nil {
		s.audit(ctx, caller, &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused,
			Object: name, Detail: pigp.ErrorMessage(err)})
		s.countDeposit("refused", 0)
	}
	return n, err
}

// upload is a deposit being received (pigp.Upload). WriteAt and ReadAt
// may be called concurrently at any offset; the SHA-256 is computed as the
// bytes arrive in order, and recomputed from the file at commit only when
// the client wrote out of order in a way the running hash could not
// follow.
type upload struct {
	svc    *Service
	caller *pigp.Caller
	name   string
	siret  string
	temp   *blob.Temp
	limit  int64
	// release gives back the account's upload and the descriptor, once
	// the upload is committed or aborted.
	release func()

	mu       sync.Mutex
	hash     hash.Hash
	hashed   int64            // bytes [0, hashed) are written and in hash
	buffered map[int64][]byte // chunks received ahead of hashed, not written yet
	bufBytes int64            // total size of buffered
	// maxBuffered bounds bufBytes (Service.ReorderBuffer).
	maxBuffered int64
	pending     map[int64]int64 // written extents beyond hashed: start → end
	dirty       bool            // the running hash cannot be trusted
	failed      error
	done        bool
	scratch     []byte // read-back buffer of catchUp
	flushed     int64  // bytes [0, flushed) were handed to the disk's writeback
}

// writebackEvery is how often, in bytes of ordered progress, an upload asks
// the kernel to start writing its data to disk.
const writebackEvery = 8 << 20

// maxPending bounds the out-of-order extents tracked before the running
// hash gives up and the file is hashed again at commit.
const maxPending = 4096

// DefaultReorderBuffer is Service.ReorderBuffer's default: what 7 writes
// of 256 KiB ahead of a missing one take (an SFTP session of pigp has at
// most 8 requests in flight).
const DefaultReorderBuffer = 7 * chunkSize

func (s *Service) reorderBuffer() int64 {
	if s.ReorderBuffer > 0 {
		return s.ReorderBuffer
	}
	return DefaultReorderBuffer
}

var _ pigp.Upload = (*upload)(nil)

// chunkSize is the capacity of a pooled out-of-order chunk: the largest
// SFTP write (255 KiB with limits@openssh.com) fits.
const chunkSize = 256 << 10

// getChunk returns a copy of p, in a pooled buffer when it fits one.
func (s *Service) getChunk(p []byte) []byte {
	if len(p) > chunkSize {
		return append([]byte(nil), p...)
	}
	if b, ok := s.chunks.Get().(*[]byte); ok {
		return append((*b)[:0], p...)
	}
	return append(make([]byte, 0, chunkSize), p...)
}

// putChunk gives a chunk's buffer back once it is written.
func (s *Service) putChunk(b []byte) {
	if cap(b) == chunkSize {
		b = b[:0]
		s.chunks.Put(&b)
	}
}

// BeginDeposit checks name and opens a new upload for it.
func (s *Service) BeginDeposit(ctx context.Context, caller *pigp.Caller, name string) (pigp.Upload, error) {
	n, err := s.CheckDepositName(ctx, caller, name)
	if err != nil {
		return nil, err
	}
	if err := s.CheckSpace(); err != nil {
		return nil, err
	}
	release, err := s.holdUpload(caller)
	if err != nil {
		s.audit(ctx, caller, &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused,
			Object: name, SIRET: n.SIRET, Detail: pigp.ErrorMessage(err)})
		return nil, err
	}
	t, err := s.Spool.Create()
	if err != nil {
		release()
		return nil, noSpace(fmt.Errorf("begin deposit: %w", err))
	}
	return &upload{
		svc: s, caller: caller, name: name, siret: n.SIRET, temp: t, limit: s.MaxUploadSize, release: release,
		hash: sha256.New(), pending: map[int64]int64{}, buffered: map[int64][]byte{}, maxBuffered: s.reorderBuffer(),
	}, nil
}

// Name returns the external name the upload will be deposited under.
func (u *upload) Name() string { return u.name }

func (u *upload) tooLarge() error {
	return pigp.Errorf(pigp.ETOOLARGE, "dépôt refusé : le fichier dépasse la taille maximale autorisée (%s)", pigp.FormatSize(u.limit))
}

// WriteAt writes p at off. Chunks arriving in order (the usual case, up to
// the reordering of pkg/sftp's workers) are written and hashed in order,
// under the lock: sequential writes, no read-back. It fails once the size
// limit is passed; the upload then can only be aborted.
func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	// off+len(p) is not computed before it is known not to overflow. A
	// negative off is a client's offset of 2^63 or more (SFTP offsets are
	// unsigned): past any size limit too.
	if off < 0 || off > u.limit-int64(len(p)) {
		err := u.tooLarge()
		if off < 0 || off > u.limit {
			err = pigp.Errorf(pigp.ETOOLARGE, "Écriture refusée : la position %d dépasse la taille maximale autorisée d'un dépôt (%s) ; "+
				"le dépôt est abandonné", uint64(off), pigp.FormatSize(u.limit))
		}
		u.fail(err)
		return 0, err
	}
	end := off + int64(len(p))
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case off == u.hashed && !u.dirty:
		if err := u.writeLocked(p, off); err != nil {
			return 0, err
		}
		u.hash.Write(p)
		u.hashed = end
		u.catchUp()
		if u.hashed-u.flushed >= writebackEvery {
			u.temp.StartWriteback(u.flushed, u.hashed-u.flushed)
			u.flushed = u.hashed
		}
	case off > u.hashed && !u.dirty && u.bufBytes+int64(len(p)) <= u.maxBuffered && !u.overlapsBuffered(off, end):
		u.buffered[off] = u.svc.getChunk(p) // p is reused once WriteAt returns
		u.bufBytes += int64(len(p))
	default:
		// Buffered chunks go to the file first, so that a later write over
		// them wins.
		if err := u.flushLocked(); err != nil {
			return 0, err
		}
		if err := u.writeLocked(p, off); err != nil {
			return 0, err
		}
		switch {
		case u.dirty:
		case off < u.hashed: // overwrite of bytes already hashed
			u.dirty = true
		case len(u.pending) >= maxPending:
			u.dirty = true
		default:
			u.pending[off] = max(u.pending[off], end)
		}
	}
	return len(p), nil
}

// overlapsBuffered reports whether [off, end) meets a buffered chunk.
func (u *upload) overlapsBuffered(off, end int64) bool {
	for o, b := range u.buffered {
		if off < o+int64(len(b)) && o < end {
			return true
		}
	}
	return false
}

// writeLocked writes p at off. A failure makes the upload unusable; a full
// disk gives the French "server lacks space" message.
func (u *upload) writeLocked(p []byte, off int64) error {
	if _, err := u.temp.WriteAt(p, off); err != nil {
		err = noSpace(fmt.Errorf("write upload: %w", err))
		if u.failed == nil {
			u.failed = err
		}
		return err
	}
	return nil
}

// catchUp writes and hashes the buffered chunks that now follow the hashed
// prefix, and hashes the extents already on disk that do, reading them
// back (they are in the page cache).
func (u *upload) catchUp() {
	for !u.dirty {
		if b, ok := u.buffered[u.hashed]; ok {
			delete(u.buffered, u.hashed)
			u.bufBytes -= int64(len(b))
			if err := u.writeLocked(b, u.hashed); err != nil {
				u.dirty = true
				return
			}
			u.hash.Write(b)
			u.hashed += int64(len(b))
			u.svc.putChunk(b)
			continue
		}
		end, ok := u.pending[u.hashed]
		if !ok {
			return
		}
		delete(u.pending, u.hashed)
		if u.scratch == nil {
			u.scratch = make([]byte, 256<<10)
		}
		for u.hashed < end {
			chunk := u.scratch[:min(int64(len(u.scratch)), end-u.hashed)]
			if _, err := u.temp.ReadAt(chunk, u.hashed); err != nil {
				u.dirty = true
				return
			}
			u.hash.Write(chunk)
			u.hashed += int64(len(chunk))
		}
	}
}

// flushLocked writes the buffered chunks to the file, where they wait as
// pending extents (or become part of a dirty upload).
func (u *upload) flushLocked() error {
	for off, b := range u.buffered {
		if err := u.writeLocked(b, off); err != nil {
			return err
		}
		if !u.dirty {
			if len(u.pending) >= maxPending {
				u.dirty = true
			} else {
				u.pending[off] = max(u.pending[off], off+int64(len(b)))
			}
		}
		u.svc.putChunk(b)
	}
	clear(u.buffered)
	u.bufBytes = 0
	return nil
}

// ReadAt reads back what was written (clients that open read-write).
func (u *upload) ReadAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	err := u.flushLocked()
	u.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return u.temp.ReadAt(p, off)
}

// Size returns the current size of the upload: what was written, once the
// chunks held back in memory are on file. An error (a chunk that cannot
// be written, a failed stat) is returned, never a size of 0.
func (u *upload) Size() (int64, error) {
	u.mu.Lock()
	err := u.flushLocked()
	u.mu.Unlock()
	if err != nil {
		return 0, err
	}
	fi, err := u.temp.Stat()
	if err != nil {
		return 0, fmt.Errorf("size of upload: %w", err)
	}
	return fi.Size(), nil
}

// Truncate sets the size of the upload (scp's FSETSTAT after writing).
func (u *upload) Truncate(size int64) error {
	if size < 0 { // a client's size of 2^63 or more (unsigned in SFTP)
		err := pigp.Errorf(pigp.ETOOLARGE, "Modification refusée : la taille %d dépasse la taille maximale autorisée d'un dépôt (%s) ; "+
			"le dépôt est abandonné", uint64(size), pigp.FormatSize(u.limit))
		u.fail(err)
		return err
	}
	if size > u.limit {
		u.fail(u.tooLarge())
		return u.tooLarge()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.flushLocked(); err != nil {
		return err
	}
	if err := u.temp.Truncate(size); err != nil {
		return noSpace(fmt.Errorf("truncate upload: %w", err))
	}
	if size < u.hashed || len(u.pending) > 0 {
		u.dirty = true
	}
	return nil
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.failed == nil {
		u.failed = err
	}
	u.mu.Unlock()
}

// Failed returns the error that made the upload unusable, if any.
func (u *upload) Failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed
}

// KeepWritten prepares an interrupted upload for a resume: the content is
// cut back to the bytes written contiguously from the start, so that a
// client resuming from the size leaves no hole. It reports false when that
// prefix is unknown (bytes were overwritten or truncated) or the upload
// failed; such an upload can only be aborted. No write may be in flight.
func (u *upload) KeepWritten() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dirty || u.failed != nil || u.done {
		return false
	}
	if err := u.temp.Truncate(u.hashed); err != nil {
		return false
	}
	clear(u.pending)
	clear(u.buffered)
	u.bufBytes = 0
	return true
}

// SetCaller records the session that goes on with the upload (a resume or
// a rename from another connection of the same account): the deposit is
// recorded with its address and protocol.
func (u *upload) SetCaller(caller *pigp.Caller) {
	u.mu.Lock()
	u.caller = caller
	u.mu.Unlock()
}

// Abort discards the upload. Nothing is recorded.
func (u *upload) Abort() {
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
	if err := u.temp.Abort(); err != nil {
		u.svc.Logger.Warn("discard upload", "error", err)
	}
	u.release()
}

// Commit makes the upload a deposit: the spool file is put into the
// content store (durable when Put returns: fsynced and linked, its
// directory fsynced, or stored by S3), then the deposit row and its audit
// row committed in one transaction. Only then does it return; on any error
// nothing is recorded and the content is removed (an object left by a
// crash between the put and the commit is swept by housekeeping).
//
// Exactly once: when the same account deposited the same name with the
// same SHA-256 within DuplicateWindow (a client retrying because the OK of
// its first upload was lost), no new deposit is made: the earlier one is
// returned, with Duplicate set, and the retry is recorded in the audit
// trail only.
func (u *upload) Commit(ctx context.Context) (*pigp.Deposit, error) {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return nil, errors.New("upload already finished")
	}
	u.done = true
	failed := u.failed
	u.mu.Unlock()
	defer u.release() // the file is closed on every way out
	if failed != nil {
		u.temp.Abort()
		u.svc.audit(ctx, u.caller, &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused, Object: u.name,
			SIRET: u.siret, Detail: pigp.ErrorMessage(failed)})
		if pigp.ErrorCode(failed) != pigp.EINTERNAL {
			u.svc.countDeposit("refused", 0)
		} else {
			u.svc.countDeposit("error", 0)
		}
		return nil, failed
	}
	size, err := u.Size()
	if err != nil {
		u.temp.Abort()
		u.svc.countDeposit("error", 0)
		return nil, noSpace(err)
	}
	sum, err := u.sum(size)
	if err != nil {
		u.temp.Abort()
		u.svc.countDeposit("error", 0)
		return nil, err
	}
	s := u.svc
	d := &pigp.Deposit{
		ID: pigp.NewID(), ExternalName: u.name, InternalName: pigp.InternalName(u.name, u.siret),
		SIRET: u.siret, AccountID: u.caller.AccountID, Login: u.caller.Login, Size: size, SHA256: sum,
		Status: pigp.DepositReceived, ClientIP: u.caller.RemoteIP, Protocol: u.caller.Protocol,
		DepositedAt: s.now(),
	}
	d.StorageKey = blob.Key(blob.KindDeposit, d.ID)
	err = s.Blobs.Put(ctx, d.StorageKey, u.temp.File, sum)
	u.temp.Abort() // the spool name goes either way; a stored object keeps its own
	if err != nil {
		s.Logger.Error("store deposit", "name", d.ExternalName, "login", d.Login, "key", d.StorageKey, "error", err)
		s.countDeposit("error", 0)
		return nil, noSpace(fmt.Errorf("store deposit: %w", err))
	}
	var since time.Time
	if s.DuplicateWindow > 0 {
		since = d.DepositedAt.Add(-s.DuplicateWindow)
	}
	var ev *pigp.AuditEvent
	if evs := s.event(u.caller, &pigp.AuditEvent{Action: pigp.AuditUpload, Outcome: pigp.AuditOK, Object: d.ExternalName,
		SIRET: d.SIRET, SHA256: d.SHA256, Detail: "dépôt " + d.ID}); len(evs) > 0 {
		ev = evs[0]
	}
	dup := func(existing *pigp.Deposit) *pigp.AuditEvent {
		evs := s.event(u.caller, &pigp.AuditEvent{Action: pigp.AuditUploadDuplicate, Outcome: pigp.AuditOK, Object: d.ExternalName,
			SIRET: d.SIRET, SHA256: d.SHA256, Detail: fmt.Sprintf("renvoi identique au dépôt %s du %s (%d octets) : répondu OK, aucun nouveau dépôt",
				existing.ID, existing.DepositedAt.UTC().Format(time.RFC3339), existing.Size)})
		if len(evs) == 0 {
			return nil
		}
		return evs[0]
	}
	existing, err := s.Store.CreateDepositOnce(ctx, d, since, ev, dup)
	if err != nil || existing != nil {
		if rmErr := s.Blobs.Remove(context.WithoutCancel(ctx), d.StorageKey); rmErr != nil {
			s.Logger.Error("remove content of an upload not recorded", "key", d.StorageKey, "error", rmErr)
		}
	}
	if err != nil {
		s.Logger.Error("record deposit", "name", d.ExternalName, "login", d.Login, "error", err)
		s.countDeposit("error", 0)
		return nil, fmt.Errorf("record deposit: %w", err)
	}
	if existing != nil {
		s.countDeposit("duplicate", 0)
		s.Logger.Info("duplicate upload answered with the earlier deposit", "deposit", existing.ID, "name", d.ExternalName,
			"siret", d.SIRET, "login", d.Login, "sha256", d.SHA256, "ip", d.ClientIP, "protocol", d.Protocol)
		return existing, nil
	}
	s.countDeposit("accepted", d.Size)
	s.Logger.Info("deposit received", "deposit", d.ID, "name", d.ExternalName, "siret", d.SIRET,
		"login", d.Login, "size", d.Size, "sha256", d.SHA256, "ip", d.ClientIP, "protocol", d.Protocol)
	if s.OnDeposit != nil {
		s.OnDeposit(d)
	}
	return d, nil
}

// sum returns the hex SHA-256 of the first size bytes of the upload.
func (u *upload) sum(size int64) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.flushLocked(); err != nil {
		return "", err
	}
	if !u.dirty && len(u.pending) == 0 && u.hashed == size {
		return hex.EncodeToString(u.hash.Sum(nil)), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(u.temp, 0, size)); err != nil {
		return "", fmt.Errorf("hash upload: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PendingDeposits returns the caller's deposits not processed yet, newest
// first.
func (s *Service) PendingDeposits(ctx context.Context, caller *pigp.Caller) ([]*pigp.Deposit, error) {
	return s.Store.ListDeposits(ctx, pigp.DepositFilter{
		SIRETs:   caller.SIRETs,
		Statuses: []string{pigp.DepositReceived, pigp.DepositProcessing},
	})
}

// RecentDeposits returns the deposits of the caller's SIRETs made since
// since, whatever their status, newest first.
func (s *Service) RecentDeposits(ctx context.Context, caller *pigp.Caller, since time.Time) ([]*pigp.Deposit, error) {
	return s.Store.ListDeposits(ctx, pigp.DepositFilter{SIRETs: caller.SIRETs, Since: since})
}
