package pigp

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// PortalSession is one logged-in browser of the portal, kept in the
// database so that it survives a restart and is honoured by every node.
// The browser holds a random token; only its SHA-256 (TokenHash) is
// stored, so a copy of the database opens no session.
type PortalSession struct {
	TokenHash string
	// Caller is who logged in: account, login, name, SIRETs, password
	// dates (RemoteIP and Protocol are the current request's, not kept).
	Caller *Caller
	// CSRFSecret keys the CSRF tokens of the session's forms.
	CSRFSecret string
	// MustChange keeps a temporary password's owner on the change page.
	MustChange bool
	// Flash is a message shown once on the next page.
	Flash string
	// CreatedAt is the login; LastSeenAt the last recorded request (written
	// at most once a minute); ExpiresAt the earlier of the idle and the
	// absolute end, for the housekeeping sweep.
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// SessionTokenHash returns the stored form of a session token.
func SessionTokenHash(token string) string {
	h := sha256.Sum256([]byte("pigp-portal-session\x00" + token))
	return hex.EncodeToString(h[:])
}
