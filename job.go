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
