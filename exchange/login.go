package exchange

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pigp/pigp"
)

// LoginGuard throttles failed logins: the one brute-force guard of SSH and
// the portal, which Login and ChangePassword go through. Guard is the
// implementation; a guard that shares its counters across nodes fits the
// same methods.
type LoginGuard interface {
	// Check returns how long an attempt for login from ip must wait before
	// it is looked at (0: go ahead); bans included.
	Check(ctx context.Context, ip, login string) (time.Duration, error)
	// Failure records a refused password and returns how long to hold the
	// answer back.
	Failure(ctx context.Context, ip, login, protocol string) time.Duration
	// Success records a correct password.
	Success(ctx context.Context, ip, login string)
	// Throttled records an attempt refused without being looked at.
	Throttled(ctx context.Context, ip, login, protocol string, wait time.Duration)
}

// msgThrottled answers an attempt refused unread; the wait is in French
// words ("2 secondes", "15 minutes").
const msgThrottled = "Trop de tentatives de connexion infructueuses. Réessayez dans %s."

// maxLoginLength bounds the login kept in the guard's counters and the
// audit trail. No account has a longer one (pigp logins have 64
// characters at most, and so do directory logins, which get a shadow row).
const maxLoginLength = 254

// NormalizeLogin returns the form of a login that accounts, the guard and
// the audit trail use: trimmed, lower case, at most maxLoginLength bytes
// of valid UTF-8.
// An SSH user name and the portal's form field give the same login.
func NormalizeLogin(login string) string {
	l := strings.ToLower(strings.TrimSpace(strings.ToValidUTF8(login, "")))
	if len(l) > maxLoginLength {
		l = l[:maxLoginLength]
	}
	return strings.ToValidUTF8(l, "")
}

// Login is the one password login of SSH and the portal. A client whose
// address, or whose address and login, failed too often is refused without
// the password being looked at (ELIMIT, with pigp.RetryAfter's wait),
// and the refusal is recorded. Otherwise the password is checked; a wrong
// one (EUNAUTHORIZED, the same answer whether the login exists or not) is
// counted by the guard and its answer held back by the guard's tarpit.
// An expired password (EEXPIRED), a password refused unchecked because too
// many checks were waiting (EUNAUTHORIZED caused by
// pigp.ErrPasswordNotChecked) and an unavailable dependency are not
// counted: they are no guesses. The edges only map the error.
func (s *Service) Login(ctx context.Context, ip, login, password, protocol string) (*pigp.Caller, error) {
	login = NormalizeLogin(login)
	var c *pigp.Caller
	err := s.guarded(ctx, ip, login, protocol, func() error {
		var err error
		c, err = s.authenticate(ctx, ip, login, password, protocol)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ChangePassword changes the caller's own password, through the guard as a
// login is (a wrong current password counts as a failed attempt), and
// returns the caller as the new password leaves it: no longer temporary,
// with its new expiry date. Refusals are EINVALID naming the rule,
// EUNAUTHORIZED for a wrong current password, EEXPIRED for a password past
// its expiry (the paierie resets it), ELIMIT when throttled; a directory
// agent's password belongs to the directory (EFORBIDDEN,
// pigp.MsgDirectoryPasswordManaged, nothing changed anywhere).
func (s *Service) ChangePassword(ctx context.Context, caller *pigp.Caller, current, next string) (*pigp.Caller, error) {
	login := NormalizeLogin(caller.Login)
	if caller.FromDirectory() || s.routedToDirectory(login) {
		// The directory's password, never changed from here.
		s.audit(ctx, caller, &pigp.AuditEvent{Action: pigp.AuditPasswordChange, Outcome: pigp.AuditRefused,
			Detail: "mot de passe de l'annuaire : à changer selon la procédure de l'administration"})
		return nil, pigp.Errorf(pigp.EFORBIDDEN, "%s", pigp.MsgDirectoryPasswordManaged)
	}
	err := s.guarded(ctx, caller.RemoteIP, login, caller.Protocol, func() error {
		return s.changePassword(ctx, login, current, next)
	})
	if err != nil {
		return nil, err
	}
	a, err := s.Store.FindAccountByLogin(ctx, login)
	if err != nil {
		return nil, unavailable(err)
	}
	c := callerOf(a, caller.RemoteIP, caller.Protocol)
	c.Session = caller.Session
	return c, nil
}

// guarded runs attempt, a check of login's password from ip, through the
// guard (nil: none): refused unread while blocked, a refused password
// counted and held back, a correct one clearing the pair's failures.
func (s *Service) guarded(ctx context.Context, ip, login, protocol string, attempt func() error) error {
	if s.Guard == nil {
		return attempt()
	}
	wait, err := s.Guard.Check(ctx, ip, login)
	if err != nil {
		return unavailable(err) // the bans cannot be read: fail closed
	}
	if wait > 0 {
		s.Logger.Warn("login throttled", "login", login, "ip", ip, "protocol", protocol, "wait", wait)
		s.Guard.Throttled(ctx, ip, login, protocol, wait)
		s.countLogin(protocol, "throttled")
		return &pigp.Error{Code: pigp.ELIMIT, Message: fmt.Sprintf(msgThrottled, pigp.FrenchDuration(wait)),
			Err: &pigp.Throttled{Wait: wait}}
	}
	err = attempt()
	switch {
	case err == nil:
		s.Guard.Success(ctx, ip, login)
	case isGuess(err):
		s.Logger.Info("login failed", "login", login, "ip", ip, "protocol", protocol)
		pigp.Pause(ctx, s.Guard.Failure(ctx, ip, login, protocol))
	}
	return err
}

// isGuess reports whether err refused a password that was checked: the
// only outcome the guard counts.
func isGuess(err error) bool {
	return pigp.ErrorCode(err) == pigp.EUNAUTHORIZED && !errors.Is(err, pigp.ErrPasswordNotChecked)
}

// authenticate checks login's password with the directory or locally, by
// the login's shape; never both.
func (s *Service) authenticate(ctx context.Context, ip, login, password, protocol string) (*pigp.Caller, error) {
	if s.routedToDirectory(login) {
		return s.directoryLogin(ctx, login, password, ip, protocol)
	}
	return s.localLogin(ctx, login, password, ip, protocol)
}
