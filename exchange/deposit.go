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

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
)

// CheckDepositName checks that name is a valid call-file name (contract §1)
// for a SIRET the caller may act for. Errors are EINVALID or EFORBIDDEN with
// a French message saying why.
func (s *Service) CheckDepositName(caller *pigp.Caller, name string) (apa.CallName, error) {
	n, err := apa.ParseCallName(name, s.now())
	if err != nil {
		return n, err
	}
	if !caller.MayActFor(n.SIRET) {
		return n, pigp.Errorf(pigp.EFORBIDDEN, "dépôt refusé : le compte %s n'est pas habilité pour le SIRET %s", caller.Login, n.SIRET)
	}
	return n, nil
}

// Upload is a deposit being received. WriteAt and ReadAt may be called
// concurrently at any offset; the SHA-256 is computed as the bytes arrive
// in order, and recomputed from the file at commit only when the client
// wrote out of order in a way the running hash could not follow.
type Upload struct {
	svc    *Service
	caller *pigp.Caller
	name   string
	siret  string
	temp   *blob.Temp
	limit  int64

	mu      sync.Mutex
	hash    hash.Hash
	hashed  int64           // bytes [0, hashed) are in hash
	pending map[int64]int64 // written extents beyond hashed: start → end
	dirty   bool            // the running hash cannot be trusted
	failed  error
	done    bool
}

// maxPending bounds the out-of-order extents tracked before the running
// hash gives up and the file is hashed again at commit.
const maxPending = 4096

// BeginDeposit checks name and opens a new upload for it.
func (s *Service) BeginDeposit(ctx context.Context, caller *pigp.Caller, name string) (*Upload, error) {
	n, err := s.CheckDepositName(caller, name)
	if err != nil {
		return nil, err
	}
	t, err := s.Blobs.Create()
	if err != nil {
		return nil, fmt.Errorf("begin deposit: %w", err)
	}
	return &Upload{
		svc: s, caller: caller, name: name, siret: n.SIRET, temp: t, limit: s.MaxUploadSize,
		hash: sha256.New(), pending: map[int64]int64{},
	}, nil
}

// Name returns the external name the upload will be deposited under.
func (u *Upload) Name() string { return u.name }

func (u *Upload) tooLarge() error {
	return pigp.Errorf(pigp.ETOOLARGE, "dépôt refusé : le fichier dépasse la taille maximale autorisée (%s)", FormatSize(u.limit))
}

// WriteAt writes p at off. It fails once the size limit is passed; the
// upload then can only be aborted.
func (u *Upload) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pigp.Errorf(pigp.EINVALID, "position d'écriture négative")
	}
	end := off + int64(len(p))
	if end > u.limit {
		u.fail(u.tooLarge())
		return 0, u.tooLarge()
	}
	n, err := u.temp.WriteAt(p, off)
	if err != nil {
		u.fail(err)
		return n, fmt.Errorf("write upload: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.dirty:
	case off < u.hashed: // overwrite of bytes already hashed
		u.dirty = true
	case off == u.hashed:
		u.hash.Write(p)
		u.hashed = end
		u.catchUp()
	default:
		if len(u.pending) >= maxPending {
			u.dirty = true
		} else if old, ok := u.pending[off]; !ok || end > old {
			u.pending[off] = end
		}
	}
	return n, nil
}

// catchUp hashes the pending extents that now follow the hashed prefix,
// reading them back from the file (they are in the page cache).
func (u *Upload) catchUp() {
	buf := make([]byte, 0)
	for {
		end, ok := u.pending[u.hashed]
		if !ok {
			return
		}
		delete(u.pending, u.hashed)
		if cap(buf) == 0 {
			buf = make([]byte, 256<<10)
		}
		for u.hashed < end {
			chunk := buf[:min(int64(len(buf)), end-u.hashed)]
			if _, err := u.temp.ReadAt(chunk, u.hashed); err != nil {
				u.dirty = true
				return
			}
			u.hash.Write(chunk)
			u.hashed += int64(len(chunk))
		}
	}
}

// ReadAt reads back what was written (clients that open read-write).
func (u *Upload) ReadAt(p []byte, off int64) (int, error) { return u.temp.ReadAt(p, off) }

// Size returns the current size of the upload.
func (u *Upload) Size() int64 {
	fi, err := u.temp.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Truncate sets the size of the upload (scp's FSETSTAT after writing).
func (u *Upload) Truncate(size int64) error {
	if size > u.limit {
		u.fail(u.tooLarge())
		return u.tooLarge()
	}
	if err := u.temp.Truncate(size); err != nil {
		return fmt.Errorf("truncate upload: %w", err)
	}
	u.mu.Lock()
	if size < u.hashed || len(u.pending) > 0 {
		u.dirty = true
	}
	u.mu.Unlock()
	return nil
}

func (u *Upload) fail(err error) {
	u.mu.Lock()
	if u.failed == nil {
		u.failed = err
	}
	u.mu.Unlock()
}

// Failed returns the error that made the upload unusable, if any.
func (u *Upload) Failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed
}

// Abort discards the upload. Nothing is recorded.
func (u *Upload) Abort() {
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
	if err := u.temp.Abort(); err != nil {
		u.svc.Logger.Warn("discard upload", "error", err)
	}
}

// Commit makes the upload a deposit: the content is fsynced and renamed
// into the store, its directory fsynced, then the deposit row committed.
// Only then does it return; on any error nothing is recorded and the
// content is removed.
func (u *Upload) Commit(ctx context.Context) (*pigp.Deposit, error) {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return nil, errors.New("upload already finished")
	}
	u.done = true
	failed := u.failed
	u.mu.Unlock()
	if failed != nil {
		u.temp.Abort()
		return nil, failed
	}
	size := u.Size()
	sum, err := u.sum(size)
	if err != nil {
		u.temp.Abort()
		return nil, err
	}
	d := &pigp.Deposit{
		ID: pigp.NewID(), ExternalName: u.name, InternalName: pigp.InternalName(u.name, u.siret),
		SIRET: u.siret, AccountID: u.caller.AccountID, Login: u.caller.Login, Size: size, SHA256: sum,
		Status: pigp.DepositReceived, ClientIP: u.caller.RemoteIP, Protocol: u.caller.Protocol,
		DepositedAt: u.svc.now(),
	}
	d.StorageKey = "depots/" + d.ID[:2] + "/" + d.ID
	if err := u.temp.Commit(d.StorageKey); err != nil {
		u.temp.Abort()
		return nil, fmt.Errorf("store deposit: %w", err)
	}
	if err := u.svc.Store.CreateDeposit(ctx, d); err != nil {
		if rmErr := u.svc.Blobs.Remove(d.StorageKey); rmErr != nil {
			u.svc.Logger.Error("remove content of failed deposit", "key", d.StorageKey, "error", rmErr)
		}
		return nil, fmt.Errorf("record deposit: %w", err)
	}
	u.svc.Logger.Info("deposit received", "deposit", d.ID, "name", d.ExternalName, "siret", d.SIRET,
		"login", d.Login, "size", d.Size, "sha256", d.SHA256, "ip", d.ClientIP, "protocol", d.Protocol)
	return d, nil
}

// sum returns the hex SHA-256 of the first size bytes of the upload.
func (u *Upload) sum(size int64) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
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
