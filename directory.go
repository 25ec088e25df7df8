package pigp

import (
	"sort"
	"strings"
	"time"
)

// Account sources: where an account's identity and password live.
const (
	// SourceLocal accounts (the départements' external users, "-xt") have
	// their password hash in pigp.
	SourceLocal = "local"
	// SourceLDAP accounts (the administration's internal agents) are
	// authenticated by the directory; pigp keeps a shadow row (login, name,
	// e-mail, last seen) so that deposits, downloads and audit rows
	// reference them like local accounts.
	SourceLDAP = "ldap"
)

// Roles a directory group grants for a SIRET.
const (
	// RoleAgent acts for the SIRET like a local account: deposits,
	// retrievals, histories. A group cn=pigp-siret-<SIRET> grants it.
	RoleAgent = "agent"
	// RoleOperateur is an agent who may also use the operator actions
	// through the portal.
	RoleOperateur = "operateur"
	// RoleAuditeur is read-only: the histories of every deposit of the
	// SIRET and the audit export; no deposit, no download recorded as a
	// user.
	RoleAuditeur = "auditeur"
)

// ValidateRole checks a role name.
func ValidateRole(role string) error {
	switch role {
	case RoleAgent, RoleOperateur, RoleAuditeur:
		return nil
	}
	return Errorf(EINVALID, "rôle %q inconnu : agent, operateur ou auditeur", role)
}

// EDIRECTORY is the code of a directory that does not answer (or cannot be
// reached securely). Each edge says "Connexion à l'annuaire impossible";
// local accounts keep working.
const EDIRECTORY = "directory_unavailable"

// Messages of directory logins.
const (
	// MsgDirectoryUnavailable is the seed's sentence, shown on the portal
	// and in the SSH banner when the directory does not answer.
	MsgDirectoryUnavailable = "Connexion à l'annuaire impossible"
	// MsgDirectoryPasswordExpired answers a directory password that
	// expired or must be changed (Active Directory's data 532 and 773).
	MsgDirectoryPasswordExpired = "Votre mot de passe de l'annuaire a expiré ou doit être changé. Changez-le selon la procédure de votre administration (poste de travail ou service d'assistance informatique), puis reconnectez-vous."
	// MsgDirectoryPasswordManaged answers a password change asked of pigp
	// for a directory account.
	MsgDirectoryPasswordManaged = "Votre mot de passe est celui de l'annuaire de votre administration : pigp ne peut pas le changer. Utilisez la procédure de changement de mot de passe de votre administration."
	// MsgAuditorReadOnly refuses what an auditeur may not do for a SIRET
	// (a deposit, a retrieval, a removal); %s is the SIRET.
	MsgAuditorReadOnly = "Profil auditeur : lecture seule pour le SIRET %s. Vous pouvez consulter les historiques, mais ni déposer, ni retirer, ni supprimer de fichier."
	// MsgAuditExportReserved refuses the audit export to a caller who
	// audits no SIRET.
	MsgAuditExportReserved = "L'export du journal d'audit est réservé au profil auditeur : votre compte n'est habilité comme auditeur pour aucun SIRET."
)

// NoPasswordExpiry is the password expiry date of directory accounts: their
// password and its policy belong to the directory, never to pigp.
var NoPasswordExpiry = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Grant is what one directory group lets an agent do for one SIRET.
type Grant struct {
	SIRET string
	Role  string
}

// GroupMapping maps a directory group to a SIRET and a role, as managed by
// `pigp ldap map`. GroupKey is the canonical form of GroupDN (attribute
// types and values in lower case, escaped), which lookups compare.
type GroupMapping struct {
	GroupDN   string
	GroupKey  string
	SIRET     string
	Role      string
	CreatedAt time.Time
}

// Validate checks a mapping before it is stored.
func (m *GroupMapping) Validate() error {
	if strings.TrimSpace(m.GroupDN) == "" || m.GroupKey == "" {
		return Errorf(EINVALID, "le DN du groupe est obligatoire")
	}
	if len(m.GroupDN) > 1000 || len(m.GroupKey) > 1000 {
		return Errorf(EINVALID, "le DN du groupe dépasse 1000 caractères")
	}
	if err := ValidateSIRET(m.SIRET); err != nil {
		return err
	}
	return ValidateRole(m.Role)
}

// DirectoryAccount is an agent the directory authenticated, with what its
// groups grant.
type DirectoryAccount struct {
	// Login is the canonical login (lower case), the shadow row's login.
	Login string
	// DN is the agent's entry in the directory.
	DN     string
	Name   string
	Email  string
	Groups []string // DNs of the agent's groups
	Grants []Grant  // sorted by SIRET then role, without duplicates
}

// SIRETs returns every SIRET the agent holds a grant for, in order.
func (d *DirectoryAccount) SIRETs() []string {
	var out []string
	for _, g := range d.Grants {
		if len(out) == 0 || out[len(out)-1] != g.SIRET {
			out = append(out, g.SIRET)
		}
	}
	return out
}

// SIRETsWith returns the SIRETs for which the agent holds one of roles.
func (d *DirectoryAccount) SIRETsWith(roles ...string) []string {
	var out []string
	for _, g := range d.Grants {
		for _, r := range roles {
			if g.Role == r && (len(out) == 0 || out[len(out)-1] != g.SIRET) {
				out = append(out, g.SIRET)
			}
		}
	}
	return out
}

// HasRole reports whether any grant carries role.
func (d *DirectoryAccount) HasRole(role string) bool {
	for _, g := range d.Grants {
		if g.Role == role {
			return true
		}
	}
	return false
}

// NormalizeGrants sorts grants by SIRET then role and drops duplicates.
func NormalizeGrants(gs []Grant) []Grant {
	out := append([]Grant(nil), gs...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].SIRET != out[j].SIRET {
			return out[i].SIRET < out[j].SIRET
		}
		return out[i].Role < out[j].Role
	})
	n := 0
	for i, g := range out {
		if i > 0 && g == out[n-1] {
			continue
		}
		out[n] = g
		n++
	}
	return out[:n]
}
