package exchange_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pigp/pigp"
)

func TestChangePassword(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	login := e.a.Login
	change := func(current, next string) error {
		_, err := e.svc.ChangePassword(ctx, &pigp.Caller{Login: login, RemoteIP: "192.0.2.7", Protocol: pigp.ProtocolSFTP}, current, next)
		return err
	}
	if err := change("wrong-Password-1", "N3w-passw0rd!x"); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := change(password, "short"); pigp.ErrorCode(err) != pigp.EINVALID || !strings.Contains(pigp.ErrorMessage(err), "12 caractères") {
		t.Fatalf("short password: %v", err)
	}
	if err := change(password, "xx"+login+"-Long1!"); pigp.ErrorCode(err) != pigp.EINVALID || !strings.Contains(pigp.ErrorMessage(err), "identifiant") {
		t.Fatalf("password with login: %v", err)
	}
	// Five changes, then each of the last five passwords is refused.
	current := password
	used := []string{password}
	for _, next := range []string{"Premier-mdp-2026!", "Deuxieme-mdp-2026!", "Troisieme-mdp-2026!", "Quatrieme-mdp-2026!", "Cinquieme-mdp-2026!"} {
		if err := change(current, next); err != nil {
			t.Fatalf("change to %s: %v", next, err)
		}
		current = next
		used = append(used, next)
	}
	for _, old := range used[len(used)-5 : len(used)-1] {
		if err := change(current, old); pigp.ErrorCode(err) != pigp.EINVALID || !strings.Contains(pigp.ErrorMessage(err), "déjà été utilisé") {
			t.Fatalf("reuse of %s: %v", old, err)
		}
	}
	// The sixth-oldest is allowed again.
	if err := change(current, used[0]); err != nil {
		t.Fatalf("password older than the last five refused: %v", err)
	}
	c, err := e.svc.Login(ctx, "127.0.0.1", login, used[0], pigp.ProtocolSFTP)
	if err != nil || c.PasswordTemporary || !c.PasswordExpiresAt.Equal(pigp.PasswordExpiry(e.now, 12)) {
		t.Fatalf("after change: %+v, %v", c, err)
	}
	// An expired password can only be reset by an operator.
	e.now = e.now.AddDate(1, 0, 1)
	if err := change(used[0], "Apres-expiration-2027!"); pigp.ErrorCode(err) != pigp.EEXPIRED {
		t.Fatalf("change of an expired password: %v", err)
	}
}

func TestRefusedKeyIsAudited(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	e.svc.Audit = e.db
	if _, err := e.svc.AuthenticateKey(ctx, e.a.Login, "SHA256:unknown", "192.0.2.9", pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("unknown key: %v", err)
	}
	events, err := e.db.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ev := range events {
		if ev.Action == pigp.AuditLogin && ev.Outcome == pigp.AuditFailed && ev.Login == e.a.Login && ev.IP == "192.0.2.9" &&
			strings.Contains(ev.Detail, "SHA256:unknown") {
			found = true
		}
	}
	if !found {
		t.Fatalf("refused key not audited: %+v", events)
	}
}
