// Package exchange implements the APA exchange as the protocols see it:
// authenticating accounts, receiving deposits durably, serving responses
// and recording their downloads, and building the history listings. The
// SFTP file system (vfs) and the web portal both drive it, so the rules are
// written once.
package exchange

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// Store is what the exchange needs from the database.
type Store interface {
	FindAccountByLogin(ctx context.Context, login string) (*pigp.Account, error)
	FindSSHKey(ctx context.Context, accountID int64, fingerprint string) (*pigp.SSHKey, error)
	// SetPassword records the new password and its audit rows in one
	// transaction.
	SetPassword(ctx context.Context, login, hash string, setAt, expiresAt time.Time, temporary bool, audit ...*pigp.AuditEvent) error
	// PasswordHistory returns the hashes of the account's last n passwords,
	// the current one included.
	PasswordHistory(ctx context.Context, accountID int64, n int) ([]string, error)
	// UpsertDirectoryAccount creates or refreshes a directory agent's
	// shadow row (ECONFLICT: the login is a local account's).
	UpsertDirectoryAccount(ctx context.Context, d *pigp.DirectoryAccount) (*pigp.Account, error)

	// CreateDepositOnce records d and its audit row ev in one transaction,
	// unless the account deposited the same name with the same SHA-256
	// since then: it records dup(existing) instead and returns the
	// existing deposit (Duplicate set).
	CreateDepositOnce(ctx context.Context, d *pigp.Deposit, since time.Time, ev *pigp.AuditEvent,
		dup func(existing *pigp.Deposit) *pigp.AuditEvent) (*pigp.Deposit, error)
	ListDeposits(ctx context.Context, f pigp.DepositFilter) ([]*pigp.Deposit, error)
	CountDeposits(ctx context.Context, f pigp.DepositFilter) (int64, error)

	CreateResponse(ctx context.Context, r *pigp.Response, audit ...*pigp.AuditEvent) error
	FindAvailableResponse(ctx context.Context, sirets []string, name string, now time.Time) (*pigp.Response, error)
	ListAvailableResponses(ctx context.Context, sirets []string, now time.Time) ([]*pigp.Response, error)
	// RecordDownload and MarkResponseRemoved record their audit rows in
	// the transaction of the change.
	RecordDownload(ctx context.Context, d *pigp.Download, audit ...*pigp.AuditEvent) error
	MarkResponseRemoved(ctx context.Context, id string, now time.Time, audit ...*pigp.AuditEvent) error
	ListDownloads(ctx context.Context, f pigp.HistoryFilter) ([]*pigp.Download, error)
	CountDownloads(ctx context.Context, f pigp.HistoryFilter) (int64, error)

	// EachAudit calls fn with each audit row of f in chain order, read
	// window by window of ids (the auditeurs' export).
	EachAudit(ctx context.Context, f pigp.AuditFilter, fn func(e *pigp.AuditEvent) error) error
}

// Service is the exchange. Its fields are set once by the caller.
type Service struct {
	Store Store
	// Blobs holds the committed contents (the filesystem store or S3);
	// Spool is the local directory where an upload or a response is
	// written before it is put there (the same store as Blobs for the
	// filesystem backend, so that Put links the file without copying it).
	Blobs blob.Backend
	Spool *blob.Store
	// Clock is the exchange's time (New: the system's), read through Now.
	Clock  pigp.Clock
	Logger *slog.Logger
	// Audit receives the audit trail's events (nil: none recorded).
	Audit pigp.Auditor
	// Metrics counts logins, deposits and downloads (nil: not counted).
	Metrics Metrics

	MaxUploadSize int64         // bytes
	Retention     time.Duration // how long a response stays available
	// ReorderBuffer is the memory one upload may hold to put chunks that
	// arrive ahead of the first missing one back in order (0:
	// DefaultReorderBuffer). Beyond it, chunks go to the file at once and
	// are read back to be hashed. The SFTP server never has more than
	// (requests in flight − 1) × longest write ahead of the missing chunk:
	// that is what it should be.
	ReorderBuffer int64
	// DuplicateWindow is how long a re-upload by the same account of the
	// same name with the same SHA-256 is answered OK as a retry of the
	// first deposit, without a new one (0: every upload is a deposit).
	DuplicateWindow time.Duration
	// MinFreeSpace is the free space of the content store below which new
	// uploads are refused at open.
	MinFreeSpace SpacePolicy
	// OnDeposit, if set, is called once a new deposit is committed, before
	// the client is answered.
	OnDeposit func(d *pigp.Deposit)
	// HistoryMonths is the window of the histories, the same over SFTP
	// (/historique) and on the portal.
	HistoryMonths int
	// PasswordValidityMonths is how long a new password stays valid.
	PasswordValidityMonths int

	// Guard throttles failed logins and password changes (New sets an
	// in-memory Guard with the default policy; nil: none).
	Guard LoginGuard
	// Directory authenticates the internal agents (nil: every login is
	// local).
	Directory Directory

	// Hashes bounds the password checks running at once (nil: no bound).
	Hashes *HashLimiter
	// Refusals records refusals with flood control (nil: each one is
	// recorded).
	Refusals *AuditFlood
	// Limits bounds the uploads and open files (zero: no bound).
	Limits Limits

	held holdings // what the limits count

	// chunks holds the buffers of out-of-order upload chunks, reused
	// across uploads (*[]byte of chunkSize).
	chunks sync.Pool
}

// New returns a service with the defaults of the contract, keeping its
// contents in blobs and spooling them in spool first.
func New(st Store, blobs blob.Backend, spool *blob.Store, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		Store: st, Blobs: blobs, Spool: spool, Logger: logger,
		Clock:                  func() time.Time { return time.Now().UTC() },
		MaxUploadSize:          pigp.DefaultMaxUploadSize,
		DuplicateWindow:        pigp.DefaultDuplicateWindow,
		Retention:              pigp.DefaultRetention,
		HistoryMonths:          12,
		PasswordValidityMonths: pigp.DefaultPasswordValidity,
	}
	// The guard reads the service's clock, whatever it is set to later.
	s.Guard = NewGuard(DefaultGuardPolicy(), nil, nil, s.now, logger)
	return s
}

// Rules returns the settings users are told about, as the exchange
// applies them.
func (s *Service) Rules() pigp.Rules {
	return pigp.Rules{MaxUploadSize: s.MaxUploadSize, Retention: s.Retention, HistoryMonths: s.HistoryMonths,
		PasswordValidityMonths: s.PasswordValidityMonths}
}

// Now returns the exchange's current time, in UTC: the time of its
// records and windows, and the one the protocols show.
func (s *Service) Now() time.Time { return s.now() }

func (s *Service) now() time.Time { return s.Clock().UTC() }
