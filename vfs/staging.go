package vfs

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pigp/pigp"
)

// Staging names are the temporary names under which clients upload before
// renaming to the final name. A staging upload is not a deposit: it is
// not listed, it can be removed, resumed, and it becomes a deposit only
// when renamed to its final name.
const (
	// WinSCPSuffix: NAME.filepart (WinSCP, resumable transfers).
	WinSCPSuffix = ".filepart"
	// RclonePartialSuffix: NAME.<8 hex digits>.partial (rclone ≥ 1.63,
	// default --partial-suffix).
	RclonePartialSuffix = ".partial"
	// LftpPrefix: .in.NAME (lftp with xfer:use-temp-file, whose default
	// xfer:temp-file-name ".in.*" has its asterisk replaced by NAME).
	LftpPrefix = ".in."
)

// StagingTTL is how long a staged upload is kept after its last write. It
// survives the session so that WinSCP can resume after a reconnection; it
// is dropped after a day without writes, as the store's housekeeping drops
// temporary files (same age, on the same modification time).
const StagingTTL = 24 * time.Hour

// DepositGrace is how long a deposit stays STAT-able under its name after
// the upload, whatever its processing status, so that clients checking the
// upload (paramiko, rclone, WinSCP), from the same connection or another
// one, find it with its size. Listings show only pending deposits.
const DepositGrace = time.Hour

// StagingTarget reports whether name is a staging name and returns the
// final name it stands for.
func StagingTarget(name string) (final string, ok bool) {
	switch {
	case strings.HasSuffix(name, WinSCPSuffix):
		final = strings.TrimSuffix(name, WinSCPSuffix)
	case strings.HasSuffix(name, RclonePartialSuffix):
		base := strings.TrimSuffix(name, RclonePartialSuffix)
		i := strings.LastIndexByte(base, '.')
		if i < 0 || !isHex8(base[i+1:]) {
			return "", false
		}
		final = base[:i]
	case strings.HasPrefix(name, LftpPrefix):
		final = strings.TrimPrefix(name, LftpPrefix)
	default:
		return "", false
	}
	return final, final != ""
}

func isHex8(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Shared is what the SFTP sessions of one process share: per account, the
// staged uploads, the modification times clients set on their deposits and
// the deposits duplicate uploads were answered with; for every session,
// the documentation and the handle limit. (A session's FS calls it its
// area.)
type Shared struct {
	// Documentation is served read-only in /historique/documentation.
	Documentation map[string][]byte
	// MaxHandles bounds the open files and directories of one session
	// (0: DefaultMaxHandles).
	MaxHandles int

	mu     sync.Mutex
	staged map[accountName]*staged
	mtimes map[accountName]mtime
	// retried holds, for DepositGrace, the deposit a duplicate upload was
	// answered with, so that a client checking its upload by STAT finds it
	// even when the first deposit is older than DepositGrace.
	retried map[accountName]retry
}

type retry struct {
	d  *pigp.Deposit
	at time.Time
}

type accountName struct {
	account int64
	name    string
}

type mtime struct {
	t   time.Time // what the client set
	set time.Time // when
}

// staged is a staging upload: open (owner set) or closed and waiting for
// its rename or a resume.
type staged struct {
	u       pigp.Upload
	touched atomic.Int64 // unix nanoseconds of the last write, open or close
	owner   *uploadFile  // the handle writing it, or nil; guarded by area.mu
}

func (s *staged) touch(now time.Time) { s.touched.Store(now.UnixNano()) }

func (s *staged) lastTouched() time.Time { return time.Unix(0, s.touched.Load()) }

// NewSharedWith returns the state the sessions of one process share, with
// the read-only documents served in /historique/documentation (file name
// → content): the staged uploads, so that one outlives its connection,
// and the modification times clients set. Its entries expire
// (StagingTTL, DepositGrace).
func NewSharedWith(documents map[string][]byte) *Shared {
	return &Shared{staged: map[accountName]*staged{}, mtimes: map[accountName]mtime{}, retried: map[accountName]retry{},
		Documentation: documents}
}

// documentNames returns the documents' names in order.
func (a *Shared) documentNames() []string {
	names := make([]string, 0, len(a.Documentation))
	for n := range a.Documentation {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// sweep drops the staged uploads untouched for StagingTTL and the
// modification times older than DepositGrace.
func (a *Shared) sweep(now time.Time) {
	var expired []*staged
	a.mu.Lock()
	for k, s := range a.staged {
		if s.owner == nil && now.Sub(s.lastTouched()) > StagingTTL {
			expired = append(expired, s)
			delete(a.staged, k)
		}
	}
	for k, m := range a.mtimes {
		if now.Sub(m.set) > DepositGrace {
			delete(a.mtimes, k)
		}
	}
	for k, r := range a.retried {
		if now.Sub(r.at) > DepositGrace {
			delete(a.retried, k)
		}
	}
	a.mu.Unlock()
	for _, s := range expired {
		s.u.Abort()
	}
}

// get returns the staged upload of key, or nil.
func (a *Shared) get(key accountName) *staged {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.staged[key]
}

// take removes and returns the staged upload of key if no handle writes
// it; busy reports one does.
func (a *Shared) take(key accountName) (s *staged, busy bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s = a.staged[key]
	if s == nil {
		return nil, false
	}
	if s.owner != nil {
		return nil, true
	}
	delete(a.staged, key)
	return s, false
}

// committed notes the deposit an upload of key ended with: a duplicate's
// is kept for DepositGrace (see retried).
func (a *Shared) committed(key accountName, d *pigp.Deposit, now time.Time) {
	if d == nil || !d.Duplicate {
		return
	}
	a.mu.Lock()
	a.retried[key] = retry{d: d, at: now}
	a.mu.Unlock()
}

// retriedDeposit returns the deposit a recent duplicate upload of key was
// answered with, if any.
func (a *Shared) retriedDeposit(key accountName, now time.Time) *pigp.Deposit {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.retried[key]; ok && now.Sub(r.at) <= DepositGrace {
		return r.d
	}
	return nil
}

// setMtime records the modification time a client set on a name.
func (a *Shared) setMtime(key accountName, t, now time.Time) {
	a.mu.Lock()
	a.mtimes[key] = mtime{t: t, set: now}
	a.mu.Unlock()
}

// mtimeOf returns the modification time a client set on key, if recent.
func (a *Shared) mtimeOf(key accountName, now time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.mtimes[key]
	if !ok || now.Sub(m.set) > DepositGrace {
		return time.Time{}, false
	}
	return m.t, true
}
