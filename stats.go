package pigp

import "time"

// Stats is a snapshot of the exchange's state for monitoring, read from the
// database (so the same on every node sharing it).
type Stats struct {
	// DepositsWaiting counts the deposits not answered yet (RECU or EN_COURS).
	DepositsWaiting int64
	// OldestWaiting is when the oldest of them was deposited (zero: none).
	OldestWaiting time.Time
	// ResponsesAvailable counts the files in every /retrait, not expired.
	ResponsesAvailable int64
	// PasswordsExpiring counts, for each number of days asked, the active
	// accounts whose password expires within that many days.
	PasswordsExpiring map[int]int64
	// JobLastSuccess is when each job asked last finished a run without
	// error, on any node (absent: never).
	JobLastSuccess map[string]time.Time
}
