package exchange

import (
	"context"
	"strings"

	"github.com/pigp/pigp"
)

// audit appends e to the audit trail, filling in the caller's identity.
// A failing audit write is logged and returned.
func (s *Service) audit(ctx context.Context, caller *pigp.Caller, e *pigp.AuditEvent) error {
	if s.Audit == nil {
		return nil
	}
	s.fill(caller, e)
	var err error
	if e.Outcome != pigp.AuditOK && caller != nil && s.Refusals != nil {
		err = s.Refusals.Record(ctx, caller.Session, e) // flood control per session
	} else {
		err = s.Audit.Audit(ctx, e)
	}
	if err != nil {
		s.Logger.Error("audit", "action", e.Action, "error", err)
		return err
	}
	return nil
}

// event returns e filled in like audit does, to be recorded by the store
// in the transaction of the state change it describes (nil when the
// service records no audit trail).
func (s *Service) event(caller *pigp.Caller, e *pigp.AuditEvent) []*pigp.AuditEvent {
	if s.Audit == nil {
		return nil
	}
	s.fill(caller, e)
	return []*pigp.AuditEvent{e}
}

// fill completes e with the caller's identity and the time.
func (s *Service) fill(caller *pigp.Caller, e *pigp.AuditEvent) {
	if caller != nil {
		if e.Login == "" {
			e.Login = caller.Login
		}
		if e.SIRET == "" {
			e.SIRET = strings.Join(caller.SIRETs, ",")
		}
		if e.IP == "" {
			e.IP = caller.RemoteIP
		}
		if e.Protocol == "" {
			e.Protocol = caller.Protocol
		}
	}
	e.Time = s.now()
}

// auditScoped records a refusal that has no session yet (a login) with the
// flood control of scope, such as the client's address.
func (s *Service) auditScoped(ctx context.Context, scope string, e *pigp.AuditEvent) {
	if s.Audit == nil {
		return
	}
	e.Time = s.now()
	var err error
	if s.Refusals != nil {
		err = s.Refusals.Record(ctx, scope, e)
	} else {
		err = s.Audit.Audit(ctx, e)
	}
	if err != nil {
		s.Logger.Error("audit", "action", e.Action, "error", err)
	}
}

// EndSession records the summaries of the refusals counted in the caller's
// session (SSH connection closed, portal logout).
func (s *Service) EndSession(ctx context.Context, caller *pigp.Caller) {
	if caller != nil {
		s.Refusals.End(ctx, caller.Session)
	}
}

// AuditKeyLogin records a successful public-key login; the SSH layer
// calls it once the key has signed (a key offered as a query is not a
// login). It fails closed: no session without its audit row.
func (s *Service) AuditKeyLogin(ctx context.Context, caller *pigp.Caller, fingerprint string) error {
	if err := s.audit(ctx, caller, &pigp.AuditEvent{Action: pigp.AuditLogin, Outcome: pigp.AuditOK, Detail: "clé publique " + fingerprint}); err != nil {
		return unavailable(err)
	}
	s.countLogin(caller.Protocol, "success")
	return nil
}
