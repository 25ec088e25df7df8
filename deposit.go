package pigp

import "time"

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
