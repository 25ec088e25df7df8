package exchange_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// fakeDirectory stands for the directory client in the exchange's unit
// tests (the real one against slapd is tested in directory/ and end to end
// in cmd/pigp). Logins ending in -xt are local.
type fakeDirectory struct {
	mu       sync.Mutex
	agents   map[string]fakeAgent
	down     bool
	expired  bool
	attempts []string // logins sent to Authenticate
}

type fakeAgent struct {
	password string
	grants   []pigp.Grant
}

var errFakeBadPassword = errors.New("fake directory: password refused")

func (f *fakeDirectory) IsLocal(login string) bool {
	return regexp.MustCompile(`-xt$`).MatchString(login)
}

func (f *fakeDirectory) Authenticate(_ context.Context, login, password string) (*pigp.DirectoryAccount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, login)
	if f.down {
		return nil, pigp.WrapError(pigp.EDIRECTORY, pigp.MsgDirectoryUnavailable, errors.New("connection refused"))
	}
	a, ok := f.agents[login]
	if !ok || password == "" || a.password != password {
		return nil, pigp.WrapError(pigp.EUNAUTHORIZED, "Identifiant ou mot de passe incorrect.", errFakeBadPassword)
	}
	if f.expired {
		return nil, pigp.Errorf(pigp.EEXPIRED, "%s", pigp.MsgDirectoryPasswordExpired)
	}
	return &pigp.DirectoryAccount{Login: login, DN: "uid=" + login + ",ou=people,dc=test", Name: "Agent " + login,
		Email: login + "@dgfip.test", Grants: pigp.NormalizeGrants(a.grants)}, nil
}

func (f *fakeDirectory) AuditDetail(err error) string {
	switch pigp.ErrorCode(err) {
	case pigp.EDIRECTORY:
		return "annuaire injoignable"
	case pigp.EEXPIRED:
		return "mot de passe de l'annuaire expiré ou à changer"
	}
	return "identifiant ou mot de passe incorrect"
}

func (f *fakeDirectory) set(fn func(f *fakeDirectory)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

const agentPassword = "Annuaire-Secret-1"

// directoryEnv is an environment with a directory: jean.dupont is an agent
// for siretA, sophie.leroy an auditeur for siretA and an agent for siretB,
// and pmartin-xt a local account.
func directoryEnv(t *testing.T) (*env, *fakeDirectory, *memAuditor) {
	e := MustOpen(t)
	dir := &fakeDirectory{agents: map[string]fakeAgent{
		"jean.dupont":  {agentPassword, []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAgent}}},
		"sophie.leroy": {agentPassword, []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAuditeur}, {SIRET: siretB, Role: pigp.RoleAgent}}},
		"agent-a":      {agentPassword, []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAgent}}}, // the login of a local account
	}}
	e.svc.Directory = dir
	audit := &memAuditor{}
	e.svc.Audit = audit
	e.mustAccount(t, "pmartin-xt", siretA)
	return e, dir, audit
}

func lastLoginRow(t *testing.T, audit *memAuditor, login string) pigp.AuditEvent {
	t.Helper()
	evs := audit.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == pigp.AuditLogin && evs[i].Login == login {
			return evs[i]
		}
	}
	t.Fatalf("no login row for %s in %+v", login, evs)
	return pigp.AuditEvent{}
}

func TestDirectoryLogin(t *testing.T) {
	e, dir, audit := directoryEnv(t)
	ctx := context.Background()

	c, err := e.svc.Login(ctx, "192.0.2.20", "Jean.Dupont", agentPassword, pigp.ProtocolSFTP)
	if err != nil {
		t.Fatal(err)
	}
	row, err := e.db.FindAccountByLogin(ctx, "jean.dupont")
	if err != nil || !row.FromDirectory() || row.LastSeenAt.IsZero() || row.PasswordHash != "" {
		t.Fatalf("shadow row: %+v, %v", row, err)
	}
	if c.AccountID != row.ID || c.Login != "jean.dupont" || !c.FromDirectory() || len(c.SIRETs) != 1 || c.SIRETs[0] != siretA ||
		c.PasswordTemporary || c.PasswordChangeDue(e.now) || !c.PasswordExpiresAt.Equal(pigp.NoPasswordExpiry) || !c.MayActFor(siretA) {
		t.Fatalf("caller: %+v", c)
	}
	if ev := lastLoginRow(t, audit, "jean.dupont"); ev.Outcome != pigp.AuditOK || ev.Detail != "annuaire" || ev.SIRET != siretA {
		t.Fatalf("audit: %+v", ev)
	}

	// The grants are the directory's at each login, not the row's.
	dir.set(func(f *fakeDirectory) {
		f.agents["jean.dupont"] = fakeAgent{agentPassword, []pigp.Grant{{SIRET: siretB, Role: pigp.RoleAgent}}}
	})
	c, err = e.svc.Login(ctx, "192.0.2.20", "jean.dupont", agentPassword, pigp.ProtocolHTTPS)
	if err != nil || c.AccountID != row.ID || len(c.SIRETs) != 1 || c.SIRETs[0] != siretB || c.MayRead(siretA) {
		t.Fatalf("second login: %+v, %v", c, err)
	}

	// Local logins never go to the directory, even while it is down.
	dir.set(func(f *fakeDirectory) { f.down, f.attempts = true, nil })
	if c, err := e.svc.Login(ctx, "192.0.2.20", "pmartin-xt", password, pigp.ProtocolSFTP); err != nil || c.FromDirectory() {
		t.Fatalf("local login with the directory down: %+v, %v", c, err)
	}
	if len(dir.attempts) != 0 {
		t.Fatalf("a local login went to the directory: %q", dir.attempts)
	}
}

// TestDirectoryLoginRefusals: what the directory refuses is refused like a
// wrong local password and counted by the guard; an outage and an expired
// directory password are said and not counted; a directory login never
// falls back to a local password.
func TestDirectoryLoginRefusals(t *testing.T) {
	e, dir, audit := directoryEnv(t)
	ctx := context.Background()
	strictGuard(e, nil)
	ip := 0
	next := func() string { ip++; return fmt.Sprintf("192.0.2.%d", ip) }
	wrongLocal, err := e.svc.Login(ctx, next(), "pmartin-xt", "Wrong-Horse-42", pigp.ProtocolSFTP)
	if wrongLocal != nil || pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatal(err)
	}
	localAnswer := pigp.ErrorMessage(err)

	for _, tt := range []struct{ name, login, password string }{
		{"WrongPassword", "jean.dupont", "Wrong-Horse-42"},
		{"EmptyPassword", "jean.dupont", ""},
		{"UnknownLogin", "personne", agentPassword},
		{"Injection", "*)(uid=*", agentPassword},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ip := next()
			_, err := e.svc.Login(ctx, ip, tt.login, tt.password, pigp.ProtocolSFTP)
			if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || pigp.ErrorMessage(err) != localAnswer {
				t.Fatalf("got %v; want the answer of a wrong local password", err)
			}
			if _, err := e.svc.Login(ctx, ip, tt.login, agentPassword, pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.ELIMIT {
				t.Fatalf("not counted by the guard: next attempt %v", err)
			}
			if ev := lastLoginRow(t, audit, tt.login); ev.Outcome != pigp.AuditFailed || !strings.HasPrefix(ev.Detail, "annuaire : ") {
				t.Fatalf("audit: %+v", ev)
			}
		})
	}

	t.Run("NoFallbackToLocalPassword", func(t *testing.T) {
		// agent-a is a local account whose login has the directory's
		// shape: its local password is never checked.
		checks := e.svc.Hashes
		e.svc.Hashes = exchange.NewHashLimiter(2, 10, time.Minute, nil, nil)
		defer func() { e.svc.Hashes = checks }()
		_, err := e.svc.Login(ctx, next(), "agent-a", password, pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || e.svc.Hashes.Stats().Checks != 0 {
			t.Fatalf("local password of a directory-shaped login: %v, %d checks", err, e.svc.Hashes.Stats().Checks)
		}
		// With the directory's password: the shadow row would take over a
		// local account, refused.
		_, err = e.svc.Login(ctx, next(), "agent-a", agentPassword, pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("homonym of a local account: %v", err)
		}
		if ev := lastLoginRow(t, audit, "agent-a"); ev.Outcome != pigp.AuditFailed || !strings.Contains(ev.Detail, "identifiant local homonyme") {
			t.Fatalf("audit: %+v", ev)
		}
		if a, err := e.db.FindAccountByLogin(ctx, "agent-a"); err != nil || a.FromDirectory() || a.ID != e.a.ID {
			t.Fatalf("the local account changed: %+v, %v", a, err)
		}
	})

	t.Run("DisabledShadowRow", func(t *testing.T) {
		if _, err := e.svc.Login(ctx, next(), "jean.dupont", agentPassword, pigp.ProtocolSFTP); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetAccountState(ctx, "jean.dupont", pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Login(ctx, next(), "jean.dupont", agentPassword, pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || pigp.ErrorMessage(err) != localAnswer {
			t.Fatalf("disabled shadow row: %v", err)
		}
		e.db.SetAccountState(ctx, "jean.dupont", pigp.AccountActive)
	})

	t.Run("DirectoryDown", func(t *testing.T) {
		dir.set(func(f *fakeDirectory) { f.down = true })
		defer dir.set(func(f *fakeDirectory) { f.down = false })
		ip := next()
		for range 3 {
			_, err := e.svc.Login(ctx, ip, "jean.dupont", agentPassword, pigp.ProtocolHTTPS)
			if pigp.ErrorCode(err) != pigp.EDIRECTORY || !strings.HasPrefix(pigp.ErrorMessage(err), "Connexion à l'annuaire impossible") {
				t.Fatalf("directory down: %v (never ELIMIT: an outage is not counted)", err)
			}
		}
		if ev := lastLoginRow(t, audit, "jean.dupont"); ev.Outcome != pigp.AuditFailed || ev.Detail != "annuaire : annuaire injoignable" {
			t.Fatalf("audit: %+v", ev)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		dir.set(func(f *fakeDirectory) { f.expired = true })
		defer dir.set(func(f *fakeDirectory) { f.expired = false })
		ip := next()
		for range 2 {
			_, err := e.svc.Login(ctx, ip, "jean.dupont", agentPassword, pigp.ProtocolSFTP)
			if pigp.ErrorCode(err) != pigp.EEXPIRED || pigp.ErrorMessage(err) != pigp.MsgDirectoryPasswordExpired {
				t.Fatalf("expired directory password: %v", err)
			}
		}
		if ev := lastLoginRow(t, audit, "jean.dupont"); ev.Outcome != pigp.AuditRefused {
			t.Fatalf("audit: %+v", ev)
		}
	})

	t.Run("KeyLogin", func(t *testing.T) {
		for _, login := range []string{"jean.dupont", "personne"} {
			if _, err := e.svc.AuthenticateKey(ctx, login, "SHA256:anything", "192.0.2.99", pigp.ProtocolSFTP); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
				t.Fatalf("key login of %s: %v", login, err)
			}
		}
	})
}

// TestDirectoryPasswordChange: pigp never changes an agent's password.
func TestDirectoryPasswordChange(t *testing.T) {
	e, dir, audit := directoryEnv(t)
	ctx := context.Background()
	c, err := e.svc.Login(ctx, "192.0.2.30", "jean.dupont", agentPassword, pigp.ProtocolHTTPS)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ChangePassword(ctx, c, agentPassword, "Velo-Rouge-Pluie-42")
	if pigp.ErrorCode(err) != pigp.EFORBIDDEN || pigp.ErrorMessage(err) != pigp.MsgDirectoryPasswordManaged {
		t.Fatalf("change: %v", err)
	}
	if a := dir.agents["jean.dupont"]; a.password != agentPassword {
		t.Fatal("the directory's password changed")
	}
	var refused bool
	for _, ev := range audit.events() {
		refused = refused || ev.Action == pigp.AuditPasswordChange && ev.Outcome == pigp.AuditRefused && ev.Login == "jean.dupont"
	}
	if !refused {
		t.Fatalf("refused change not audited: %+v", audit.events())
	}
}

// TestAuditorRole: the auditeur's role is checked once, in the exchange:
// sophie.leroy reads both SIRETs' histories, deposits and retrieves only
// for siretB, where she is an agent.
func TestAuditorRole(t *testing.T) {
	e, _, audit := directoryEnv(t)
	ctx := context.Background()
	c, err := e.svc.Login(ctx, "192.0.2.40", "sophie.leroy", agentPassword, pigp.ProtocolSFTP)
	if err != nil {
		t.Fatal(err)
	}
	c.Session = "ssh-test"
	if !c.MayRead(siretA) || c.MayActFor(siretA) || !c.MayActFor(siretB) || c.ReadOnly() {
		t.Fatalf("caller: %+v", c)
	}
	// A deposit of agent-a for siretA, responses for both SIRETs.
	up, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now))
	if err != nil {
		t.Fatal(err)
	}
	up.WriteAt([]byte("<appel/>"), 0)
	if _, err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{siretA, siretB} {
		if _, err := e.svc.Publish(ctx, s, "reponse_"+s+".xml", pigp.DocResponse, "", bytes.NewReader([]byte("<r/>"))); err != nil {
			t.Fatal(err)
		}
	}

	_, err = e.svc.BeginDeposit(ctx, c, callName(siretA, e.now.Add(time.Second)))
	if pigp.ErrorCode(err) != pigp.EFORBIDDEN || !strings.HasPrefix(pigp.ErrorMessage(err), "Profil auditeur : lecture seule pour le SIRET "+siretA) {
		t.Fatalf("auditeur's deposit: %v", err)
	}
	up, err = e.svc.BeginDeposit(ctx, c, callName(siretB, e.now.Add(time.Second)))
	if err != nil {
		t.Fatalf("agent's deposit: %v", err)
	}
	up.Abort()

	rs, err := e.svc.Responses(ctx, c)
	if err != nil || len(rs) != 1 || rs[0].SIRET != siretB {
		t.Fatalf("responses listed: %+v, %v", rs, err)
	}
	if _, err := e.svc.OpenResponse(ctx, c, "reponse_"+siretA+".xml"); pigp.ErrorCode(err) != pigp.EFORBIDDEN {
		t.Fatalf("auditeur's retrieval: %v", err)
	}
	if err := e.svc.RemoveResponse(ctx, c, "reponse_"+siretA+".xml"); pigp.ErrorCode(err) != pigp.EFORBIDDEN {
		t.Fatalf("auditeur's removal: %v", err)
	}
	if got := e.downloads(t, siretA, siretB); len(got) != 0 {
		t.Fatalf("downloads recorded: %+v", got)
	}
	csv, err := e.svc.DepositsCSV(ctx, c)
	if err != nil || !strings.Contains(string(csv), siretA) {
		t.Fatalf("auditeur's depots.csv lacks siretA's deposit: %v\n%s", err, csv)
	}
	var refusals []string
	for _, ev := range audit.events() {
		if ev.Outcome == pigp.AuditRefused && ev.Login == "sophie.leroy" {
			refusals = append(refusals, ev.Action)
		}
	}
	if strings.Join(refusals, ",") != pigp.AuditUploadRefused+","+pigp.AuditDownload+","+pigp.AuditRemove {
		t.Fatalf("refusals audited: %q", refusals)
	}
}
