package pigp

import "time"

// Document types of files in /retrait (contract §4).
const (
	DocResponse = "Fichier réponse APA"
	DocReport   = "Compte rendu de rejet APA"
)

// DefaultRetention is how long a response stays available (21 days).
const DefaultRetention = 21 * 24 * time.Hour

// Response states.
const (
	ResponseAvailable = "DISPONIBLE"
	ResponseRemoved   = "SUPPRIME" // removed by the département after download
	ResponseExpired   = "EXPIRE"   // removed by the retention job
)

// Response is a file made available in a SIRET's /retrait: a response to a
// call file, or a rejection report.
type Response struct {
	ID              string
	Name            string
	SIRET           string
	DocType         string
	Size            int64
	SHA256          string
	DepositID       string // the call it answers; "" when published by an operator
	State           string
	AvailableAt     time.Time
	ExpiresAt       time.Time
	FirstDownloadAt *time.Time
	RemovedAt       *time.Time
	StorageKey      string
}

// Visible reports whether r is listed in /retrait at now.
func (r *Response) Visible(now time.Time) bool {
	return r.State == ResponseAvailable && now.Before(r.ExpiresAt)
}

// Download records one download of a response.
type Download struct {
	ID           int64
	ResponseID   string
	ResponseName string
	DocType      string
	Size         int64
	SIRET        string
	AccountID    int64
	Login        string
	Protocol     string
	ClientIP     string
	DownloadedAt time.Time
}

// HistoryFilter selects history rows of some SIRETs within a window.
type HistoryFilter struct {
	SIRETs []string
	Since  time.Time
	Offset int
	Limit  int
}
