package pigp

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// Deposit statuses, as written in the history (contract §7).
const (
	DepositReceived   = "RECU"
	DepositProcessing = "EN_COURS"
	DepositProcessed  = "TRAITE"
	DepositRejected   = "REJETE"
)

// DefaultMaxUploadSize is the default limit of one deposit (100 MiB).
const DefaultMaxUploadSize = 100 << 20

// Deposit is one accepted upload of a call file.
type Deposit struct {
	ID           string // 32 lowercase hex, never reused
	ExternalName string // the name the client gave
	InternalName string // external name + "." + depositor SIRET
	SIRET        string // the SIRET of the name (and depositor)
	AccountID    int64
	Login        string
	Size         int64
	SHA256       string // lowercase hex
	Status       string
	ClientIP     string
	Protocol     string
	DepositedAt  time.Time
	StorageKey   string // where the content lives in the blob store
	// Duplicate is set on the deposit an upload is answered with when it
	// repeated that earlier deposit (same account, name and SHA-256 within
	// the duplicate window): nothing new was recorded.
	Duplicate bool
}

// DefaultDuplicateWindow is how long a re-upload of the same file (same
// account, name and SHA-256) is recognised as a retry of the first
// deposit rather than a new one.
const DefaultDuplicateWindow = 24 * time.Hour

// InternalName returns the internal name of a call file deposited by siret
// under the external name ext (contract §1).
func InternalName(ext, siret string) string { return ext + "." + siret }

// DepositFilter selects deposits.
type DepositFilter struct {
	SIRETs   []string
	Statuses []string  // nil for any
	Since    time.Time // zero for no lower bound
	Offset   int
	Limit    int // 0 for no limit
}

// Upload is a deposit being received, as the exchange hands it to a
// protocol (SFTP, the portal). WriteAt and ReadAt may be called
// concurrently at any offset; WriteAt and Truncate refuse any offset or
// size beyond the deposit size limit (ETOOLARGE), negative ones included,
// and the upload then can only be aborted.
type Upload interface {
	// Name returns the external name the upload will be deposited under.
	Name() string
	WriteAt(p []byte, off int64) (int, error)
	// ReadAt reads back what was written (clients that open read-write).
	ReadAt(p []byte, off int64) (int, error)
	// Size returns what was written so far (an error, never 0, when it
	// cannot be told).
	Size() (int64, error)
	// Truncate sets the size (scp's FSETSTAT after writing).
	Truncate(size int64) error
	// Failed returns the error that made the upload unusable, if any.
	Failed() error
	// KeepWritten cuts an interrupted upload back to the bytes written
	// contiguously from the start, for a resume; false when that prefix is
	// unknown or the upload failed (it can only be aborted then).
	KeepWritten() bool
	// SetCaller records the session that goes on with the upload (a
	// resume or a rename from another connection of the same account).
	SetCaller(caller *Caller)
	// Abort discards the upload; nothing is recorded.
	Abort()
	// Commit makes the upload a deposit, durably, and returns it (or the
	// earlier deposit it repeats, Duplicate set). On error nothing is
	// recorded.
	Commit(ctx context.Context) (*Deposit, error)
}

// callLike matches the names of the contract's form (2026_SIRET_stamp.xml),
// with the staging prefixes and suffixes of SFTP clients.
var callLike = regexp.MustCompile(`^(\.in\.)?[0-9]{4}_[0-9]{14}_[0-9]{14}\.xml(\.filepart|\.[0-9a-f]+\.partial)?$`)

// RefusedNameAttrs are the log attributes of an upload refused by its name
// (SFTP and the portal). A name of the contract's form is logged with the
// reason; any other name, chosen freely by the client, may carry personal
// data (a beneficiary's name), so only its length and the error code are
// logged. The audit trail keeps it literally.
func RefusedNameAttrs(name string, err error) []any {
	if callLike.MatchString(name) {
		return []any{"name", name, "reason", ErrorMessage(err)}
	}
	return []any{"name", fmt.Sprintf("(%d caractères, voir le journal d'audit)", len(name)), "code", ErrorCode(err)}
}
