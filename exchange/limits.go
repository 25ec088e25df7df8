package exchange

import (
	"sync"
	"time"

	"github.com/pigp/pigp"
)

// Limits bounds what clients hold open through the exchange, over SFTP and
// the portal alike. Zero means no bound.
type Limits struct {
	// UploadsPerAccount bounds the uploads an account has in progress:
	// open, or staged and waiting for a resume. Each holds a descriptor.
	UploadsPerAccount int
	// OpenFiles bounds the descriptors held by uploads and downloads of
	// every client together, so that the process keeps descriptors for
	// the portal, the database and new logins.
	OpenFiles int
}

// holdings counts what the limits bound.
type holdings struct {
	mu      sync.Mutex
	files   int
	uploads map[int64]int // account → uploads in progress
	logged  time.Time     // last "descriptors exhausted" log line
}

// Messages of the limits, shown to users.
const (
	msgTooManyUploads = "Dépôt refusé : ce compte a déjà %d envois en cours (au plus %d à la fois). " +
		"Attendez la fin des envois en cours, ou supprimez les fichiers temporaires (.filepart) abandonnés, puis recommencez."
	msgNoDescriptors = "Serveur momentanément saturé (trop de fichiers ouverts) : réessayez dans quelques minutes."
)

// holdUpload reserves an upload of the caller's account and its
// descriptor; the returned function releases them (once).
func (s *Service) holdUpload(caller *pigp.Caller) (func(), error) {
	h := &s.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.uploads[caller.AccountID]; s.Limits.UploadsPerAccount > 0 && n >= s.Limits.UploadsPerAccount {
		return nil, pigp.Errorf(pigp.ELIMIT, msgTooManyUploads, n, s.Limits.UploadsPerAccount)
	}
	if err := s.holdFileLocked(); err != nil {
		return nil, err
	}
	if h.uploads == nil {
		h.uploads = map[int64]int{}
	}
	h.uploads[caller.AccountID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.files--
			if h.uploads[caller.AccountID]--; h.uploads[caller.AccountID] <= 0 {
				delete(h.uploads, caller.AccountID)
			}
		})
	}, nil
}

// holdFile reserves a descriptor for a download; the returned function
// releases it (once).
func (s *Service) holdFile() (func(), error) {
	h := &s.held
	h.mu.Lock()
	err := s.holdFileLocked()
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.files--
			h.mu.Unlock()
		})
	}, nil
}

func (s *Service) holdFileLocked() error {
	h := &s.held
	if s.Limits.OpenFiles > 0 && h.files >= s.Limits.OpenFiles {
		if now := time.Now(); now.Sub(h.logged) >= time.Second {
			h.logged = now
			s.Logger.Warn("file refused: descriptor budget exhausted", "open_files", h.files, "max", s.Limits.OpenFiles)
		}
		return pigp.Errorf(pigp.EUNAVAILABLE, msgNoDescriptors)
	}
	h.files++
	return nil
}

// Held returns the descriptors held by uploads and downloads, and the
// uploads in progress of account.
func (s *Service) Held(account int64) (files, uploads int) {
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	return s.held.files, s.held.uploads[account]
}
