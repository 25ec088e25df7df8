// Package pigp holds the domain of the APA exchange between départements and
// the DGFiP: organisations, accounts, deposits, responses and the downloads
// of responses, with their rules and error codes. It does no I/O; adapters
// (store, vfs, server, web, scheduler) meet through its types.
package pigp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Version and Commit are the build version and source commit, set by the
// linker in release builds:
//
//	go build -trimpath -ldflags "-X github.com/pigp/pigp.Version=1.4.0 -X github.com/pigp/pigp.Commit=$(git rev-parse HEAD)" ./cmd/pigp
var (
	Version = "dev"
	Commit  = ""
)

// BuildCommit returns Commit or, when the linker did not set it, the
// revision the go command stamped from the work tree ("-dirty" when it had
// uncommitted changes), or "unknown".
func BuildCommit() string {
	if Commit != "" {
		return Commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// Protocols through which a file can be deposited or downloaded, as
// recorded in the history and the audit trail. The portal records HTTP or
// HTTPS according to the scheme the client actually used.
const (
	ProtocolSFTP  = "SFTP"
	ProtocolHTTP  = "HTTP"
	ProtocolHTTPS = "HTTPS"
	ProtocolCLI   = "CLI"
)

// NewID returns a new 32-character lowercase hexadecimal identifier from
// crypto/rand, used for deposits and responses. 128 random bits make a
// collision practically impossible; the database's primary key enforces
// uniqueness anyway.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("pigp: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// IsID reports whether s has the form of a deposit or response identifier.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Organisation is a département (or any body) identified by its SIRET.
type Organisation struct {
	SIRET     string
	Name      string
	CreatedAt time.Time
}

// Validate checks an organisation before it is stored.
func (o *Organisation) Validate() error {
	if err := ValidateSIRET(o.SIRET); err != nil {
		return err
	}
	if strings.TrimSpace(o.Name) == "" {
		return Errorf(EINVALID, "le nom de l'organisation est obligatoire")
	}
	if len([]rune(o.Name)) > 200 {
		return Errorf(EINVALID, "le nom de l'organisation dépasse 200 caractères")
	}
	return nil
}

// ValidateSIRET checks that s is 14 digits with a valid Luhn checksum.
// La Poste's establishments (SIREN 356000000) follow another rule: the sum
// of the digits is a multiple of 5.
func ValidateSIRET(s string) error {
	if len(s) != 14 {
		return Errorf(EINVALID, "SIRET %q invalide : il doit compter 14 chiffres", s)
	}
	sum, digits := 0, 0
	for i := 0; i < 14; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Errorf(EINVALID, "SIRET %q invalide : il ne doit contenir que des chiffres", s)
		}
		d := int(c - '0')
		digits += d
		if i%2 == 0 { // from the right, every second digit is doubled: positions 0,2,… from the left for 14 digits
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if sum%10 == 0 || strings.HasPrefix(s, "356000000") && digits%5 == 0 {
		return nil
	}
	return Errorf(EINVALID, "SIRET %s invalide : la clé de contrôle est fausse", s)
}

// Clock returns the current time; it is injected everywhere time matters so
// that tests can move it.
type Clock func() time.Time

// Caller describes who performs an operation: the authenticated account,
// the SIRETs it may see and act for, and from where.
type Caller struct {
	AccountID int64
	Login     string
	Civility  string // "MR", "MME" or "" (shown before the name)
	Name      string
	// SIRETs are every SIRET whose histories the caller reads; it acts
	// (deposits, retrievals) for those MayActFor allows.
	SIRETs   []string
	RemoteIP string
	Protocol string
	// PasswordTemporary and PasswordExpiresAt tell whether the caller must
	// change the password now or soon.
	PasswordTemporary bool
	PasswordExpiresAt time.Time
	// Source is SourceLocal ("" too) or SourceLDAP: a directory agent,
	// whose password pigp neither expires nor changes.
	Source string
	// Grants are a directory agent's roles per SIRET, as its groups gave
	// them at this login (nil for a local account, which acts for each of
	// its SIRETs).
	Grants []Grant
	// Session names the SSH connection or portal session the caller acts
	// in (never a secret): refusals are counted per session so that a
	// hostile client cannot grow the audit trail without bound.
	Session string
}

// FromDirectory reports whether the caller is a directory agent.
func (c *Caller) FromDirectory() bool { return c.Source == SourceLDAP }

// PasswordChangeDue reports whether the caller chooses a new password at
// this login: the password is temporary or expires within
// PasswordChangeWindow of now. Never for a directory agent.
func (c *Caller) PasswordChangeDue(now time.Time) bool {
	if c.FromDirectory() {
		return false
	}
	return c.PasswordTemporary || c.PasswordExpiresAt.Sub(now) < PasswordChangeWindow
}

// MayRead reports whether the caller reads the histories of siret.
func (c *Caller) MayRead(siret string) bool {
	return slices.Contains(c.SIRETs, siret)
}

// MayActFor reports whether the caller acts for siret as a département's
// agent does: deposits, retrievals (recorded downloads) and removals. A
// local account acts for each of its SIRETs; a directory agent for those
// it holds as agent or operateur, never as auditeur only (read-only).
func (c *Caller) MayActFor(siret string) bool {
	if !c.MayRead(siret) {
		return false
	}
	if !c.FromDirectory() {
		return true
	}
	for _, g := range c.Grants {
		if g.SIRET == siret && (g.Role == RoleAgent || g.Role == RoleOperateur) {
			return true
		}
	}
	return false
}

// ActingSIRETs returns the SIRETs the caller acts for (MayActFor).
func (c *Caller) ActingSIRETs() []string {
	var out []string
	for _, s := range c.SIRETs {
		if c.MayActFor(s) {
			out = append(out, s)
		}
	}
	return out
}

// AuditedSIRETs returns the SIRETs for which the caller holds the auditeur
// role (a directory agent's grant): those whose audit trail it exports.
// A local account audits nothing.
func (c *Caller) AuditedSIRETs() []string {
	if !c.FromDirectory() {
		return nil
	}
	var out []string
	for _, s := range c.SIRETs {
		for _, g := range c.Grants {
			if g.SIRET == s && g.Role == RoleAuditeur && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// ReadOnly reports whether the caller acts for no SIRET: an auditeur,
// who only reads histories.
func (c *Caller) ReadOnly() bool { return len(c.ActingSIRETs()) == 0 }

type callerKey struct{}

// NewContextWithCaller returns a context carrying c.
func NewContextWithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller carried by ctx, or nil.
func CallerFromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// Pause waits d, or less if ctx ends first: the delay that throttling puts
// before an answer.
func Pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
