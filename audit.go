package pigp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit actions. They are stable identifiers stored in the audit trail and
// shown to auditors; never change one, add new ones.
const (
	AuditLogin           = "connexion"
	AuditUpload          = "depot"
	AuditUploadRefused   = "depot_refuse"
	AuditDownload        = "telechargement"
	AuditRemove          = "suppression"
	AuditExpiry          = "expiration"
	AuditPasswordChange  = "changement_mot_de_passe"
	AuditPasswordExpired = "expiration_mot_de_passe"
	AuditBan             = "bannissement"
	AuditOperator        = "action_operateur"
	AuditProcessing      = "traitement"
	// AuditExport is an auditeur's export of the audit trail of its
	// SIRETs (the portal's "Export du journal d'audit"); its SIRET field
	// lists the SIRETs exported and its detail the period.
	AuditExport = "export_journal_audit"
	// AuditUploadDuplicate is an upload that repeated an earlier deposit
	// (same account, name and SHA-256 within the duplicate window): it is
	// answered OK and recorded only as this row.
	AuditUploadDuplicate = "depot_doublon"
	// AuditAnchor is the first row linked under the audit key: it records
	// the state of the rows before it (an older, unkeyed trail, verified).
	AuditAnchor = "ancrage_journal"
)

// Audit outcomes.
const (
	AuditOK      = "succes"
	AuditFailed  = "echec"
	AuditRefused = "refus"
)

// Field size limits of the audit trail: longer values (hostile names, for
// instance) are cut, with a marker.
const (
	auditShortMax = 255
	auditLongMax  = 1000
)

// AuditEvent is one append-only row of the audit trail. ID, PrevHash and
// Hash are set by the store when the row is chained.
type AuditEvent struct {
	ID       int64
	Time     time.Time
	Action   string
	Outcome  string
	Login    string
	SIRET    string // one SIRET, or several separated by commas
	IP       string
	Protocol string
	Object   string // file name, IP, command line, …
	SHA256   string
	Detail   string
	PrevHash string
	Hash     string
}

// Auditor appends events to the audit trail.
type Auditor interface {
	Audit(ctx context.Context, e *AuditEvent) error
}

// Normalize makes the event storable: UTC time truncated to the
// microsecond (what both databases keep), valid UTF-8 without control
// characters (escaped as \xNN, so hostile names are kept literally but
// cannot forge lines) and bounded lengths. It is applied before hashing.
func (e *AuditEvent) Normalize() {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	for _, f := range []struct {
		p   *string
		max int
	}{
		{&e.Action, 40}, {&e.Outcome, 16}, {&e.Login, auditShortMax}, {&e.SIRET, auditShortMax},
		{&e.IP, 64}, {&e.Protocol, 16}, {&e.Object, auditLongMax}, {&e.SHA256, 64}, {&e.Detail, auditLongMax},
	} {
		*f.p = cleanAuditText(*f.p, f.max)
	}
}

func cleanAuditText(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	out := b.String()
	if utf8.RuneCountInString(out) > max {
		r := []rune(out)
		out = string(r[:max-1]) + "…"
	}
	return out
}

// Canonical returns the serialisation the hash of an unkeyed (version 1)
// row covers: a JSON array of strings in a fixed order ("pigp-audit-v1",
// id, time in RFC 3339 with microseconds in UTC, action, outcome, login,
// SIRET, IP, protocol, object, sha256, detail, previous hash). Go's JSON
// encoding of a string slice is deterministic, so the same row always gives
// the same bytes.
func (e *AuditEvent) Canonical() []byte { return e.canonical("pigp-audit-v1") }

func (e *AuditEvent) canonical(version string) []byte {
	b, _ := json.Marshal([]string{
		version, fmt.Sprint(e.ID), e.Time.UTC().Format(auditTimeFormat),
		e.Action, e.Outcome, e.Login, e.SIRET, e.IP, e.Protocol, e.Object, e.SHA256, e.Detail, e.PrevHash,
	})
	return b
}

const auditTimeFormat = "2006-01-02T15:04:05.000000Z"

// ComputeHash returns the hex SHA-256 of the version 1 canonical
// serialisation: the link of the rows written before the trail was keyed.
func (e *AuditEvent) ComputeHash() string {
	s := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(s[:])
}

// AuditFilter selects audit rows by time (From inclusive, To exclusive;
// zero values are open ends) and, when SIRETs is not nil, by SIRET: the
// rows whose SIRET field (one SIRET, or several separated by commas) names
// one of them. An empty, non-nil SIRETs selects no row.
type AuditFilter struct {
	From, To time.Time
	SIRETs   []string
}

// AuditReport is the result of verifying the chain.
type AuditReport struct {
	Rows     int
	LastID   int64
	LastHash string
	// KeyID identifies the key the chain is linked under; AnchorID is the
	// first keyed row (rows before it are an older, unkeyed trail).
	KeyID    string
	AnchorID int64
	// Checkpoints is how many checkpoints were checked against the chain.
	Checkpoints int
	// Problems lists what breaks the chain, first ones only.
	Problems []string
}

// OK reports whether the chain is intact.
func (r *AuditReport) OK() bool { return len(r.Problems) == 0 }

// Ban is a temporary refusal of every login from an address, shared by all
// nodes through the database.
type Ban struct {
	IP       string
	Reason   string
	Failures int
	BannedAt time.Time
	Until    time.Time
}
