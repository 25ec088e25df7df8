package exchange_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// strictGuard installs a guard whose first counted failure blocks the
// (address, login) pair for a minute, with its refusals recorded in audit.
func strictGuard(e *env, audit pigp.Auditor) *exchange.Guard {
	p := exchange.DefaultGuardPolicy()
	p.PairFree, p.BaseDelay = 0, time.Minute
	g := exchange.NewGuard(p, nil, audit, func() time.Time { return e.now }, nil)
	e.svc.Guard = g
	return g
}

// TestLoginGuard: Login owns the guard. A wrong password is counted and
// blocks the pair; the next attempt, even with the right password, is
// refused unread (ELIMIT with its wait) and recorded; the owner elsewhere
// still gets in; the block ends.
func TestLoginGuard(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	audit := &memAuditor{}
	strictGuard(e, audit)
	if _, err := e.svc.Login(ctx, "192.0.2.66", "agent-a", "Wrong-Horse-42", pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("wrong password: %v", err)
	}
	_, err := e.svc.Login(ctx, "192.0.2.66", "agent-a", password, pigp.ProtocolHTTPS)
	if pigp.ErrorCode(err) != pigp.ELIMIT || pigp.RetryAfter(err) != time.Minute ||
		pigp.ErrorMessage(err) != "Trop de tentatives de connexion infructueuses. Réessayez dans 1 minute." {
		t.Fatalf("blocked pair: %v (wait %s), want ELIMIT for 1 minute", err, pigp.RetryAfter(err))
	}
	// The case and spaces of the login do not escape the block.
	if _, err := e.svc.Login(ctx, "192.0.2.66", " Agent-A ", password, pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.ELIMIT {
		t.Fatalf("blocked pair, login in capitals: %v", err)
	}
	var throttled int
	for _, ev := range audit.events() {
		if ev.Action == pigp.AuditLogin && ev.Outcome == pigp.AuditRefused && ev.Login == "agent-a" && ev.IP == "192.0.2.66" &&
			strings.Contains(ev.Detail, "sans vérification") {
			throttled++
		}
	}
	if throttled != 2 {
		t.Fatalf("%d throttled attempts recorded, want 2: %+v", throttled, audit.events())
	}
	c, err := e.svc.Login(ctx, "192.0.2.1", "AGENT-A", password, pigp.ProtocolSFTP)
	if err != nil || c.Login != "agent-a" {
		t.Fatalf("owner from another address: %+v, %v", c, err)
	}
	e.now = e.now.Add(time.Minute)
	if _, err := e.svc.Login(ctx, "192.0.2.66", "agent-a", password, pigp.ProtocolSFTP); err != nil {
		t.Fatalf("after the block: %v", err)
	}
}

// TestLoginGuardCountsOnlyGuesses: an expired password (proved) and a
// password refused unchecked (too many checks waiting) are no guesses:
// with a guard that blocks at the first failure, the next attempt is
// still looked at.
func TestLoginGuardCountsOnlyGuesses(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	strictGuard(e, nil)
	saved := e.now
	e.now = e.a.PasswordExpiresAt
	if _, err := e.svc.Login(ctx, "192.0.2.5", "agent-a", password, pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.EEXPIRED {
		t.Fatalf("expired: %v", err)
	}
	e.now = saved
	e.svc.Hashes = exchange.NewHashLimiter(1, 0, time.Minute, nil, nil)
	b := newBlocker()
	go e.svc.Hashes.Do(ctx, "other", b.fn)
	<-b.started
	if _, err := e.svc.Login(ctx, "192.0.2.5", "agent-a", password, pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("busy: %v", err)
	}
	close(b.release)
	waitFor(t, "the place freed", func() bool { return e.svc.Hashes.Stats().Checks == 1 })
	if _, err := e.svc.Login(ctx, "192.0.2.5", "agent-a", password, pigp.ProtocolSFTP); err != nil {
		t.Fatalf("after an expiry and an unchecked refusal: %v", err)
	}
}

// TestChangePasswordGuarded: a wrong current password is a failed attempt
// of the same guard; a change returns the caller as the new password
// leaves it, in the same session.
func TestChangePasswordGuarded(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	strictGuard(e, nil)
	hash, _ := pigp.HashPassword(password)
	if err := e.db.SetPassword(ctx, "agent-b", hash, e.now, e.now.Add(48*time.Hour), true); err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Login(ctx, "192.0.2.8", "agent-b", password, pigp.ProtocolHTTPS)
	if err != nil || !c.PasswordTemporary || !c.PasswordChangeDue(e.now) {
		t.Fatalf("temporary password: %+v, %v", c, err)
	}
	c.Session = "web-1234"
	next := "Velo-Rouge-Pluie-42"
	changed, err := e.svc.ChangePassword(ctx, c, password, next)
	if err != nil {
		t.Fatal(err)
	}
	if changed.PasswordTemporary || changed.PasswordChangeDue(e.now) || !changed.PasswordExpiresAt.Equal(pigp.PasswordExpiry(e.now, 12)) ||
		changed.Session != "web-1234" || changed.Login != "agent-b" || changed.RemoteIP != "192.0.2.8" || changed.Protocol != pigp.ProtocolHTTPS {
		t.Fatalf("changed caller: %+v", changed)
	}
	if _, err := e.svc.ChangePassword(ctx, changed, "Wrong-Horse-42", "Autre-Velo-Bleu-43"); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("wrong current password: %v", err)
	}
	if _, err := e.svc.ChangePassword(ctx, changed, next, "Autre-Velo-Bleu-43"); pigp.ErrorCode(err) != pigp.ELIMIT {
		t.Fatalf("after a wrong current password: %v, want ELIMIT", err)
	}
	if _, err := e.svc.Login(ctx, "192.0.2.8", "agent-b", next, pigp.ProtocolHTTPS); pigp.ErrorCode(err) != pigp.ELIMIT {
		t.Fatalf("login of the same pair: %v, want ELIMIT", err)
	}
}
