package exchange

import (
	"context"

	"github.com/pigp/pigp"
)

// Messages of authentication failures. They never say whether the login
// exists: only a caller who proved the password learns that it expired.
const (
	msgBadCredentials  = "Identifiant ou mot de passe incorrect."
	msgPasswordExpired = "Votre mot de passe a expiré. Le Conseil départemental est invité à prendre l'attache de sa paierie départementale pour obtenir un nouveau mot de passe."
)

// AuthenticatePassword checks login and password and returns the caller.
// Unknown logins, wrong passwords and disabled accounts all give the same
// EUNAUTHORIZED error after the same work; an expired password gives
// EEXPIRED, only once the password was proved.
func (s *Service) AuthenticatePassword(ctx context.Context, login, password, remoteIP, protocol string) (*pigp.Caller, error) {
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil {
		if pigp.ErrorCode(err) != pigp.ENOTFOUND {
			return nil, err
		}
		pigp.VerifyPassword("", password) // same cost as a real check
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
	}
	if !pigp.VerifyPassword(a.PasswordHash, password) || a.State != pigp.AccountActive {
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
	}
	if a.PasswordExpired(s.now()) {
		return nil, pigp.Errorf(pigp.EEXPIRED, msgPasswordExpired)
	}
	return callerOf(a, remoteIP, protocol), nil
}

// AuthenticateKey returns the caller for login when the public key with the
// given fingerprint (already proved by the SSH layer) belongs to it. The
// yearly validity of the account's password also bounds key logins: it is
// the habilitation's renewal.
func (s *Service) AuthenticateKey(ctx context.Context, login, fingerprint, remoteIP, protocol string) (*pigp.Caller, error) {
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil {
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			return nil, pigp.Errorf(pigp.EUNAUTHORIZED, msgBadCredentials)
		}
		return nil, err
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

func callerOf(a *pigp.Account, ip, protocol string) *pigp.Caller {
	return &pigp.Caller{AccountID: a.ID, Login: a.Login, SIRETs: a.SIRETs, RemoteIP: ip, Protocol: protocol}
}
