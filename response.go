package pigp

import (
	"fmt"
	"io"
	"strings"
	"time"
)

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

// HistoryPageSize is the number of rows of a page of the portal's
// histories.
const HistoryPageSize = 20

// HistoryPage is one page of a history (the portal's): rows of the window,
// the last Months months, newest first.
type HistoryPage struct {
	Deposits  []*Deposit  // the rows of a deposit history
	Downloads []*Download // the rows of a download history
	Page      int         // this page, from 1
	Pages     int         // the number of pages, at least 1
	Total     int64       // the rows of the whole window
	Months    int         // the window
}

// HistoryFilter selects history rows of some SIRETs within a window.
type HistoryFilter struct {
	SIRETs []string
	Since  time.Time
	Offset int
	Limit  int
}

// History file names, in /historique and on the portal (contract §7).
const (
	DepositsCSV  = "depots.csv"
	DownloadsCSV = "retraits.csv"
)

// ResponseReader is an open response, as the exchange hands it to a
// protocol. It records which bytes were served, in any order and with
// overlaps; closing it after every byte was served records the download
// (an error then means the download could not be recorded).
type ResponseReader interface {
	// ReadAt reads at off; a negative off is refused (EINVALID).
	io.ReaderAt
	// Read reads on from the end of the bytes served so far, for
	// sequential consumers.
	io.Reader
	// Response returns the file being read.
	Response() *Response
	// Complete reports whether every byte was served.
	Complete() bool
	Close() error
}

// FormatSize writes a size as the portal does: o, Ko, Mo, Go, with a
// French decimal comma (1,5 Mo).
func FormatSize(n int64) string {
	const unit = 1024
	switch {
	case n < unit:
		return fmt.Sprintf("%d o", n)
	case n < unit*unit:
		return fmt.Sprintf("%d Ko", (n+unit-1)/unit)
	case n < unit*unit*unit:
		return decimalComma(fmt.Sprintf("%.1f Mo", float64(n)/(unit*unit)))
	default:
		return decimalComma(fmt.Sprintf("%.1f Go", float64(n)/(unit*unit*unit)))
	}
}

// decimalComma turns "1.5 Mo" into "1,5 Mo" and "100.0 Mo" into "100 Mo".
func decimalComma(s string) string {
	return strings.Replace(strings.Replace(s, ".0 ", " ", 1), ".", ",", 1)
}
