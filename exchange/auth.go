package exchange

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pigp/pigp"
)

// errDirectoryKey is the cause of a key login refused to a directory agent.
var errDirectoryKey = errors.New("public keys are not accepted for directory accounts")

// Messages of authentication failures. They never say whether the login
// exists: only a caller who proved the password learns that it expired.
const (
	msgBadCredentials  = "Identifiant ou mot de passe incorrect."
	msgHashBusy        = "Serveur momentanément surchargé : le mot de passe n'a pas pu être vérifié. Réessayez dans quelques instants."
	msgPasswordExpired = "Votre mot de passe a expiré. Le Conseil départemental est invité à prendre l'attache de sa paierie départementale pour obtenir un nouveau mot de passe."
)

// localLogin checks the password of a local account and returns the
// caller. Unknown logins, wrong passwords and disabled accounts all give
// the same EUNAUTHORIZED error after the same work; an expired password
// gives EEXPIRED, only once the password was proved.
func (s *Service) localLogin(ctx context.Context, login, password, remoteIP, protocol string) (*pigp.Caller, error) {
	ev := &pigp.AuditEvent{Action: pigp.AuditLogin, Login: login, IP: remoteIP, Protocol: protocol, Detail: "mot de passe"}
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil && pigp.ErrorCode(err) != pigp.ENOTFOUND {
		return nil, unavailable(err)
	}
	hash := "" // an unknown login is checked against a dummy hash: same cost
	if a != nil {
		hash = a.PasswordHash
		ev.SIRET = strings.Join(a.SIRETs, ",")
	}
	ok, err := s.verifyPassword(ctx, remoteIP, hash, password)
	if err != nil {
		// Refused unchecked, answered like a wrong password; the refusals
		// of one address are recorded with flood control.
		ev.Outcome, ev.Detail = pigp.AuditFailed, "refusée sans vérification : trop de vérifications de mot de passe en attente"
		s.auditScoped(ctx, "ip:"+remoteIP, ev)
		s.countLogin(protocol, "throttled")
		return nil, pigp.WrapError(pigp.EUNAUTHORIZED, msgBadCredentials, err)
	}
	if a == nil || !ok || a.State != pigp.AccountActive {
		ev.Detail = "identifiant ou mot de passe incorrect"
		return nil, s.refuseLogin(ctx, ev, protocol)
	}
	if a.PasswordExpired(s.now()) {
		ev.Outcome, ev.Detail = pigp.AuditRefused, "mot de passe expiré"
		s.audit(ctx, nil, ev)
		s.countLogin(protocol, "expired")
		return nil, pigp.Errorf(pigp.EEXPIRED, msgPasswordExpired)
	}
	c := callerOf(a, remoteIP, protocol)
	ev.Outcome = pigp.AuditOK
	if a.PasswordTemporary {
		ev.Detail = "mot de passe temporaire"
	}
	// Fail closed: no session without its audit row; the caller is told
	// the service is unavailable, never that the password is wrong.
	if err := s.audit(ctx, nil, ev); err != nil {
		return nil, unavailable(err)
	}
	s.countLogin(protocol, "success")
	return c, nil
}

// refuseLogin records ev as a failed login and returns the answer of a
// wrong password.
func (s *Service) refuseLogin(ctx context.Context, ev *pigp.AuditEvent, protocol string) error {
	ev.Outcome = pigp.AuditFailed
	s.audit(ctx, nil, ev)
	s.countLogin(protocol, "failure")
	return pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
}

// unavailable maps a failure of the server's own (database, full disk)
// during a login to EUNAVAILABLE with a French message.
func unavailable(err error) error {
	if code := pigp.ErrorCode(err); code != pigp.EINTERNAL && code != pigp.EUNAVAILABLE {
		return err
	}
	return pigp.WrapError(pigp.EUNAVAILABLE, msgUnavailable, err)
}

// AuthenticateKey returns the caller for login when the public key with the
// given fingerprint (already proved by the SSH layer) belongs to it. The
// yearly validity of the account's password also bounds key logins: it is
// the habilitation's renewal.
//
// A key offer goes through the login guard: from an address, or an
// address and login, that failed too often it is refused unread (ELIMIT,
// recorded with flood control) without looking the key up. A refused key
// is not counted as a guess (an agent's SSH agent offers every key it
// holds, and the right one may come last); a connection that offers
// keys until the SSH layer's limit is, through KeyOffersExhausted.
func (s *Service) AuthenticateKey(ctx context.Context, login, fingerprint, remoteIP, protocol string) (*pigp.Caller, error) {
	if s.Guard != nil {
		wait, err := s.Guard.Check(ctx, remoteIP, NormalizeLogin(login))
		if err != nil {
			return nil, unavailable(err) // the bans cannot be read: fail closed
		}
		if wait > 0 {
			s.Guard.Throttled(ctx, remoteIP, NormalizeLogin(login), protocol, wait)
			s.countLogin(protocol, "throttled")
			return nil, &pigp.Error{Code: pigp.ELIMIT, Message: fmt.Sprintf(msgThrottled, pigp.FrenchDuration(wait)),
				Err: &pigp.Throttled{Wait: wait}}
		}
	}
	c, err := s.authenticateKey(ctx, login, fingerprint, remoteIP, protocol)
	if code := pigp.ErrorCode(err); code == pigp.EUNAUTHORIZED || code == pigp.EEXPIRED {
		// A refused key (unknown, or of a disabled or expired account) is a
		// failed login attempt, recorded with flood control per address:
		// a client offering key after key, connection after connection,
		// cannot grow the trail without bound. The successful one is
		// recorded once the client has signed (server's verified-key
		// callback).
		s.auditScoped(ctx, "pubkey:"+remoteIP, &pigp.AuditEvent{Action: pigp.AuditLogin, Outcome: pigp.AuditFailed, Login: login,
			IP: remoteIP, Protocol: protocol, Detail: "clé publique " + fingerprint + " refusée : " + pigp.ErrorMessage(err)})
		if code == pigp.EEXPIRED {
			s.countLogin(protocol, "expired")
		} else {
			s.countLogin(protocol, "failure")
		}
	}
	return c, err
}

// KeyOffersExhausted records that one connection from ip offered login
// keys until the SSH layer stopped looking them up (max_auth_tries refused
// keys): one failed attempt for the guard, as a wrong password is, so
// that a client probing keys connection after connection is blocked, then
// banned, like a password guesser.
func (s *Service) KeyOffersExhausted(ctx context.Context, ip, login, protocol string) {
	login = NormalizeLogin(login)
	s.Logger.Info("login failed: too many public keys refused", "login", login, "ip", ip, "protocol", protocol)
	if s.Guard != nil {
		s.Guard.Failure(ctx, ip, login, protocol)
	}
}

func (s *Service) authenticateKey(ctx context.Context, login, fingerprint, remoteIP, protocol string) (*pigp.Caller, error) {
	if s.routedToDirectory(login) {
		// An agent proves who it is to the directory, with its password.
		return nil, pigp.WrapError(pigp.EUNAUTHORIZED, msgBadCredentials, errDirectoryKey)
	}
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil {
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
		}
		return nil, err
	}
	if a.FromDirectory() {
		return nil, pigp.WrapError(pigp.EUNAUTHORIZED, msgBadCredentials, errDirectoryKey)
	}
	if _, err := s.Store.FindSSHKey(ctx, a.ID, fingerprint); err != nil {
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
		}
		return nil, err
	}
	if a.State != pigp.AccountActive {
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
	}
	if a.PasswordExpired(s.now()) {
		return nil, pigp.Errorf(pigp.EEXPIRED, msgPasswordExpired)
	}
	return callerOf(a, remoteIP, protocol), nil
}

// verifyPassword checks password against hash (a dummy one when hash is
// "") within the hashing limit, for the client key (its address).
func (s *Service) verifyPassword(ctx context.Context, key, hash, password string) (bool, error) {
	var ok bool
	err := s.Hashes.Do(ctx, key, func() { ok = pigp.VerifyPassword(hash, password) })
	return ok, err
}

func callerOf(a *pigp.Account, ip, protocol string) *pigp.Caller {
	return &pigp.Caller{AccountID: a.ID, Login: a.Login, Civility: a.Civility, Name: a.Name, SIRETs: a.SIRETs, RemoteIP: ip, Protocol: protocol,
		PasswordTemporary: a.PasswordTemporary, PasswordExpiresAt: a.PasswordExpiresAt, Source: a.Source}
}

// changePassword replaces login's password after checking the current one
// and the policy: pigp.CheckPassword, and none of the last
// pigp.PasswordHistory passwords. A password past its expiry date cannot
// be changed this way: the paierie départementale resets it (EEXPIRED).
// Refusals are EINVALID errors naming the rule; a wrong current password
// is EUNAUTHORIZED. Every refusal is audited.
func (s *Service) changePassword(ctx context.Context, login, current, next string) error {
	err := s.changeLocalPassword(ctx, login, current, next)
	if code := pigp.ErrorCode(err); code != "" && code != pigp.EINTERNAL {
		s.audit(ctx, nil, &pigp.AuditEvent{Action: pigp.AuditPasswordChange, Outcome: pigp.AuditRefused, Login: login,
			Detail: pigp.ErrorMessage(err)})
	}
	return err
}

func (s *Service) changeLocalPassword(ctx context.Context, login, current, next string) error {
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil {
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			if _, err := s.verifyPassword(ctx, "login:"+login, "", current); err != nil {
				return pigp.WrapError(pigp.EUNAUTHORIZED, msgBadCredentials, err)
			}
			return pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
		}
		return err
	}
	ok, err := s.verifyPassword(ctx, "login:"+login, a.PasswordHash, current)
	if err != nil {
		return pigp.WrapError(pigp.EUNAUTHORIZED, "Mot de passe actuel incorrect.", err)
	}
	if !ok || a.State != pigp.AccountActive {
		return pigp.Errorf(pigp.EUNAUTHORIZED, "Mot de passe actuel incorrect.")
	}
	now := s.now()
	if a.PasswordExpired(now) {
		return pigp.Errorf(pigp.EEXPIRED, msgPasswordExpired)
	}
	if err := pigp.CheckPassword(next, a.Login, a.Name, a.SIRETs); err != nil {
		return err
	}
	if next == current {
		return pigp.Errorf(pigp.EINVALID, "mot de passe refusé : le nouveau mot de passe doit être différent de l'actuel")
	}
	old, err := s.Store.PasswordHistory(ctx, a.ID, pigp.PasswordHistory)
	if err != nil {
		return err
	}
	for _, h := range old {
		reused, err := s.verifyPassword(ctx, "login:"+login, h, next)
		if err != nil {
			return pigp.WrapError(pigp.EUNAVAILABLE, msgHashBusy, err)
		}
		if reused {
			return pigp.Errorf(pigp.EINVALID, "mot de passe refusé : il a déjà été utilisé parmi les %d derniers", pigp.PasswordHistory)
		}
	}
	var hash string
	if herr := s.Hashes.Do(ctx, "login:"+login, func() { hash, err = pigp.HashPassword(next) }); herr != nil {
		return pigp.WrapError(pigp.EUNAVAILABLE, msgHashBusy, herr)
	}
	if err != nil {
		return err
	}
	ev := s.event(nil, &pigp.AuditEvent{Action: pigp.AuditPasswordChange, Outcome: pigp.AuditOK, Login: a.Login,
		SIRET: strings.Join(a.SIRETs, ",")})
	if err := s.Store.SetPassword(ctx, a.Login, hash, now, pigp.PasswordExpiry(now, s.PasswordValidityMonths), false, ev...); err != nil {
		return err
	}
	s.Logger.Info("password changed", "login", a.Login)
	return nil
}
