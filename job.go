package pigp

import "time"

// JobRun records one run of a scheduled job.
type JobRun struct {
	Job        string
	Node       string
	Tick       time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	OK         bool
	Message    string // error text, for operators only
	Counts     string // e.g. "expired=3 deleted=3 failed=0"
}

// Notification kinds.
const (
	NotifyResponseAvailable = "reponse_disponible"
	NotifyPasswordReminder  = "rappel_mot_de_passe"
	NotifyPasswordExpired   = "mot_de_passe_expire"
)

// Notification statuses.
const (
	NotificationPending = "pending" // to be sent
	NotificationSent    = "sent"
	NotificationFailed  = "failed"   // gave up after retries
	NotificationNotSent = "not_sent" // no SMTP configured: logged only
)

// Notification is an e-mail to send. DedupKey makes it unique: the same
// event never notifies the same address twice.
type Notification struct {
	ID            int64
	Kind          string
	DedupKey      string
	Recipient     string
	Subject       string
	Body          string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        *time.Time
}
