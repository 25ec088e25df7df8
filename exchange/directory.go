package exchange

import (
	"context"
	"strings"

	"github.com/pigp/pigp"
)

// Directory authenticates the administration's internal agents
// (directory.Client).
type Directory interface {
	// IsLocal reports whether login is a local account's: it never goes
	// to the directory, and any other login never falls back to a local
	// password.
	IsLocal(login string) bool
	// Authenticate checks an agent's password and returns the agent with
	// the grants of its groups: EUNAUTHORIZED for every refusal (the one
	// answer of a wrong password), EEXPIRED when the directory says the
	// password expired or must be changed, pigp.EDIRECTORY when it does
	// not answer.
	Authenticate(ctx context.Context, login, password string) (*pigp.DirectoryAccount, error)
	// AuditDetail says in French why err refused an agent, for the audit
	// trail only.
	AuditDetail(err error) string
}

// msgDirectoryDown answers an agent while the directory does not answer,
// beginning with the sentence of the old portal.
const msgDirectoryDown = pigp.MsgDirectoryUnavailable + " : votre mot de passe n'a pas pu être vérifié. Réessayez dans quelques minutes."

// routedToDirectory reports whether login is a directory agent's.
func (s *Service) routedToDirectory(login string) bool {
	return s.Directory != nil && !s.Directory.IsLocal(login)
}

// directoryLogin authenticates an internal agent with the directory, never
// with a local password. The agent's shadow row is created or refreshed
// (name, e-mail, last seen, SIRETs) and the caller gets the row's id and
// login, so that deposits, downloads and the audit trail reference it like
// a local account, with the grants its groups give now.
func (s *Service) directoryLogin(ctx context.Context, login, password, ip, protocol string) (*pigp.Caller, error) {
	ev := &pigp.AuditEvent{Action: pigp.AuditLogin, Login: login, IP: ip, Protocol: protocol}
	d, err := s.Directory.Authenticate(ctx, login, password)
	if err != nil {
		ev.Detail = "annuaire : " + s.Directory.AuditDetail(err)
		switch pigp.ErrorCode(err) {
		case pigp.EUNAUTHORIZED:
			ev.Outcome = pigp.AuditFailed
			s.audit(ctx, nil, ev)
			s.countLogin(protocol, "failure")
		case pigp.EEXPIRED:
			ev.Outcome = pigp.AuditRefused
			s.audit(ctx, nil, ev)
			s.countLogin(protocol, "expired")
		case pigp.EDIRECTORY:
			// An outage is no guess: the guard does not count it (agents
			// must not be banned for it), and its refusals are recorded
			// with the flood control of the client's address.
			ev.Outcome = pigp.AuditFailed
			s.auditScoped(ctx, "ip:"+ip, ev)
			s.Logger.Warn("directory login refused: directory unavailable", "login", login, "ip", ip, "protocol", protocol, "error", err)
			return nil, pigp.WrapError(pigp.EDIRECTORY, msgDirectoryDown, err)
		}
		return nil, unavailable(err) // the database's, reading the mappings
	}
	a, err := s.Store.UpsertDirectoryAccount(ctx, d)
	if err != nil {
		switch pigp.ErrorCode(err) {
		case pigp.ECONFLICT:
			ev.Detail = "annuaire : identifiant local homonyme, connexion refusée"
			s.Logger.Warn("directory login refused: a local account has this login", "login", login)
		case pigp.ENOTFOUND, pigp.EINVALID: // an organisation removed meanwhile, a row pigp cannot hold
			ev.Detail = "annuaire : " + pigp.ErrorMessage(err)
		default:
			return nil, unavailable(err)
		}
		return nil, s.refuseLogin(ctx, ev, protocol)
	}
	if a.State != pigp.AccountActive {
		ev.Detail = "annuaire : compte désactivé dans pigp"
		return nil, s.refuseLogin(ctx, ev, protocol)
	}
	c := callerOf(a, ip, protocol)
	c.SIRETs, c.Grants = d.SIRETs(), d.Grants
	c.PasswordTemporary, c.PasswordExpiresAt = false, pigp.NoPasswordExpiry
	ev.Outcome, ev.Detail, ev.SIRET = pigp.AuditOK, "annuaire", strings.Join(c.SIRETs, ",")
	// Fail closed: no session without its audit row; the agent is told
	// the service is unavailable.
	if err := s.audit(ctx, nil, ev); err != nil {
		return nil, unavailable(err)
	}
	s.countLogin(protocol, "success")
	return c, nil
}
