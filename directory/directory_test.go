package directory_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/directory"
	"github.com/pigp/pigp/internal/slapdtest"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

const (
	siretA       = "22940028800010" // Val-de-Marne, an organisation of the tests
	siretB       = "22750001100019" // another organisation
	siretUnknown = "35600000000048" // valid, never created
	password     = "Motdepasse-Annuaire-1"
)

// fixture is a slapd with agents and groups, and a database with the
// organisations.
type fixture struct {
	slapd *slapdtest.Server
	db    *store.DB
	cfg   directory.Config
}

func newFixture(t *testing.T, opt slapdtest.Options) *fixture {
	t.Helper()
	s := slapdtest.Start(t, opt)
	db, _ := testutil.NewStore(t, "sqlite")
	ctx := context.Background()
	for _, o := range []*pigp.Organisation{{SIRET: siretA, Name: "Val-de-Marne"}, {SIRET: siretB, Name: "Paris"}} {
		if err := db.CreateOrganisation(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	jean := s.AddPerson("jean.dupont", password, "Jean Dupont", "jean.dupont@dgfip.test")
	paul := s.AddPerson("paul.martin", password, "Paul Martin", "paul.martin@dgfip.test")
	sophie := s.AddPerson("sophie.leroy", password, "Sophie Leroy", "")
	lucie := s.AddPerson("lucie.bernard", password, "Lucie Bernard", "lucie.bernard@dgfip.test")
	s.AddGroup("pigp-siret-"+siretA, jean)
	s.AddGroup("informatique", paul)                      // maps to nothing
	s.AddGroup("pigp-siret-"+siretUnknown, lucie)         // names no organisation
	controle := s.AddGroup("Controle Paierie 94", sophie) // mapped below
	s.AddGroup("pigp-siret-"+siretB+"-bis", paul)         // not the pattern
	_, _, err := db.SaveGroupMappings(ctx, []*pigp.GroupMapping{
		{GroupDN: controle, GroupKey: mustKey(t, controle), SIRET: siretA, Role: pigp.RoleAuditeur},
		{GroupDN: controle, GroupKey: mustKey(t, controle), SIRET: siretB, Role: pigp.RoleAuditeur},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := directory.DefaultConfig()
	cfg.URL, cfg.StartTLS = s.URL, false
	cfg.BindDN, cfg.BindPassword, cfg.BaseDN = slapdtest.ServiceDN, slapdtest.ServicePassword, slapdtest.BaseDN
	if opt.TLS {
		cfg.StartTLS, cfg.CAFile = true, s.CAFile
	}
	return &fixture{slapd: s, db: db, cfg: cfg}
}

func mustKey(t *testing.T, dn string) string {
	t.Helper()
	k, err := directory.CanonicalDN(dn)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *fixture) client(t *testing.T, cfg directory.Config) *directory.Client {
	t.Helper()
	c, err := directory.New(cfg, f.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedBecause checks a refusal: EUNAUTHORIZED, the one French answer,
// and the internal cause.
func refusedBecause(t *testing.T, err error, cause error) {
	t.Helper()
	if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || !errors.Is(err, cause) {
		t.Fatalf("error = %v; want EUNAUTHORIZED caused by %v", err, cause)
	}
	if pigp.ErrorMessage(err) != "Identifiant ou mot de passe incorrect." {
		t.Fatalf("message = %q", pigp.ErrorMessage(err))
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t, slapdtest.Options{})
	ctx := context.Background()
	for _, mode := range []string{"memberOf", "group search"} {
		t.Run(mode, func(t *testing.T) {
			cfg := f.cfg
			if mode == "group search" {
				cfg.GroupAttribute, cfg.GroupBaseDN = "", slapdtest.GroupsDN
			}
			c := f.client(t, cfg)

			t.Run("agent in a SIRET group", func(t *testing.T) {
				a, err := c.Authenticate(ctx, "Jean.Dupont", password)
				if err != nil {
					t.Fatal(err)
				}
				if a.Login != "jean.dupont" || a.Name != "Jean Dupont" || a.Email != "jean.dupont@dgfip.test" ||
					a.DN != "uid=jean.dupont,"+slapdtest.PeopleDN || len(a.Grants) != 1 ||
					a.Grants[0] != (pigp.Grant{SIRET: siretA, Role: pigp.RoleAgent}) {
					t.Fatalf("account = %+v", a)
				}
			})
			t.Run("mapped group as auditeur", func(t *testing.T) {
				a, err := c.Authenticate(ctx, "sophie.leroy", password)
				if err != nil {
					t.Fatal(err)
				}
				want := []pigp.Grant{{SIRET: siretB, Role: pigp.RoleAuditeur}, {SIRET: siretA, Role: pigp.RoleAuditeur}}
				if len(a.Grants) != 2 || a.Grants[0] != want[0] || a.Grants[1] != want[1] || a.Email != "" ||
					!a.HasRole(pigp.RoleAuditeur) || len(a.SIRETsWith(pigp.RoleAgent, pigp.RoleOperateur)) != 0 {
					t.Fatalf("account = %+v", a)
				}
			})
			t.Run("agent in no group granting a SIRET is refused", func(t *testing.T) {
				_, err := c.Authenticate(ctx, "paul.martin", password)
				refusedBecause(t, err, directory.ErrNoGrant)
				if d := directory.AuditDetail(err); !strings.Contains(d, "aucun groupe") {
					t.Fatalf("audit detail %q", d)
				}
				// A SIRET group of an organisation pigp does not know grants nothing.
				_, err = c.Authenticate(ctx, "lucie.bernard", password)
				refusedBecause(t, err, directory.ErrNoGrant)
			})
			t.Run("wrong password, unknown login", func(t *testing.T) {
				_, err := c.Authenticate(ctx, "jean.dupont", password+"x")
				refusedBecause(t, err, directory.ErrBadPassword)
				_, err = c.Authenticate(ctx, "personne.inconnue", password)
				refusedBecause(t, err, directory.ErrUnknownLogin)
				if directory.AuditDetail(err) != "identifiant ou mot de passe incorrect" {
					t.Fatalf("unknown login audit detail %q", directory.AuditDetail(err))
				}
			})
			t.Run("empty password", func(t *testing.T) {
				_, err := c.Authenticate(ctx, "jean.dupont", "")
				refusedBecause(t, err, directory.ErrEmptyPassword)
			})
			t.Run("LDAP injection", func(t *testing.T) {
				for _, login := range []string{"*)(uid=*", "*", "jean.dup*", "jean.dupont)(uid=*", "*)(|(uid=jean.dupont)", `jean.dupont\`} {
					// Escaped, each is a plain value that no entry has: the
					// search finds nothing (unescaped, "jean.dup*" would
					// find jean.dupont and "*)(uid=*" every agent).
					_, err := c.Authenticate(ctx, login, password)
					refusedBecause(t, err, directory.ErrUnknownLogin)
				}
			})
			t.Run("the connections are reused and still work", func(t *testing.T) {
				if err := c.Check(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Authenticate(ctx, "jean.dupont", password); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestEmptyPasswordSendsNothing(t *testing.T) {
	// Nothing listens at this address: an empty password is refused before
	// any connection, so the answer is a refusal, not "directory down".
	cfg := directory.DefaultConfig()
	cfg.URL, cfg.StartTLS = "ldap://127.0.0.1:1", false
	cfg.BindDN, cfg.BindPassword, cfg.BaseDN = "cn=svc,dc=x", "s", "dc=x"
	db, _ := testutil.NewStore(t, "sqlite")
	c, err := directory.New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Authenticate(context.Background(), "jean.dupont", "")
	refusedBecause(t, err, directory.ErrEmptyPassword)
	// Nor does a local login's password ever reach the directory.
	_, err = c.Authenticate(context.Background(), "pmartin-xt", "x")
	refusedBecause(t, err, directory.ErrUnknownLogin)
	_, err = c.Authenticate(context.Background(), "jean.dupont", "x")
	if pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("with a password: %v; want EDIRECTORY", err)
	}
}

func TestConcurrentLogins(t *testing.T) {
	f := newFixture(t, slapdtest.Options{})
	cfg := f.cfg
	cfg.PoolSize = 2
	c := f.client(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 3; j++ {
				pw := password
				if (i+j)%3 == 0 {
					pw += "faux"
				}
				a, err := c.Authenticate(context.Background(), "jean.dupont", pw)
				switch {
				case pw == password && (err != nil || a.Login != "jean.dupont"):
					errs <- err
				case pw != password && pigp.ErrorCode(err) != pigp.EUNAUTHORIZED:
					errs <- errors.New("wrong password not refused: " + pigp.ErrorCode(err))
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDirectoryDownAndBack(t *testing.T) {
	f := newFixture(t, slapdtest.Options{})
	c := f.client(t, f.cfg)
	ctx := context.Background()
	if _, err := c.Authenticate(ctx, "jean.dupont", password); err != nil {
		t.Fatal(err)
	}
	f.slapd.Stop()
	for i := 0; i < 2; i++ { // the pooled connection, then a new dial
		_, err := c.Authenticate(ctx, "jean.dupont", password)
		if pigp.ErrorCode(err) != pigp.EDIRECTORY || pigp.ErrorMessage(err) != "Connexion à l'annuaire impossible" {
			t.Fatalf("slapd stopped: %v; want EDIRECTORY", err)
		}
		if directory.AuditDetail(err) != "annuaire injoignable" {
			t.Fatalf("audit detail %q", directory.AuditDetail(err))
		}
	}
	// Even a wrong password gets "directory down", never "wrong password".
	if _, err := c.Authenticate(ctx, "jean.dupont", "faux"); pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("wrong password with slapd stopped: %v", err)
	}
	if err := c.Check(ctx); pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("Check with slapd stopped: %v", err)
	}
	if c.Available() {
		t.Fatal("Available() with slapd stopped")
	}

	f.slapd.Restart()
	a, err := c.Authenticate(ctx, "jean.dupont", password)
	if err != nil || a.Login != "jean.dupont" {
		t.Fatalf("after restart: %+v, %v", a, err)
	}
	if !c.Available() || c.Check(ctx) != nil {
		t.Fatal("not available after restart")
	}

	// Restarted while connections sit in the pool: the stale one is
	// replaced without the caller noticing.
	f.slapd.Restart()
	if _, err := c.Authenticate(ctx, "jean.dupont", password); err != nil {
		t.Fatalf("after a restart under a pooled connection: %v", err)
	}
}

func TestServiceAccountPasswordFile(t *testing.T) {
	f := newFixture(t, slapdtest.Options{})
	file := filepath.Join(t.TempDir(), "bind-password")
	if err := os.WriteFile(file, []byte("faux\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.BindPassword, cfg.BindPasswordFile = "", file
	c := f.client(t, cfg)
	// A wrong service password: nobody can be authenticated, the directory
	// is unusable (not a refusal of the agent).
	if _, err := c.Authenticate(context.Background(), "jean.dupont", password); pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("wrong service password: %v; want EDIRECTORY", err)
	}
	// Fixed in the file: the next connection reads it, no restart.
	if err := os.WriteFile(file, []byte(slapdtest.ServicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(context.Background(), "jean.dupont", password); err != nil {
		t.Fatal(err)
	}
}

func TestStartTLS(t *testing.T) {
	f := newFixture(t, slapdtest.Options{TLS: true, RequireTLS: true})
	ctx := context.Background()

	c := f.client(t, f.cfg) // ldap:// + StartTLS + the test CA
	if a, err := c.Authenticate(ctx, "jean.dupont", password); err != nil || a.Grants[0].SIRET != siretA {
		t.Fatalf("StartTLS: %+v, %v\n%s", a, err, f.slapd.Log())
	}

	ldaps := f.cfg
	ldaps.URL = f.slapd.LDAPSURL
	if _, err := f.client(t, ldaps).Authenticate(ctx, "jean.dupont", password); err != nil {
		t.Fatalf("ldaps: %v", err)
	}

	// The server requires TLS: a client told not to use it cannot work.
	plain := f.cfg
	plain.StartTLS = false
	if _, err := f.client(t, plain).Authenticate(ctx, "jean.dupont", password); pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("start_tls false against a TLS-only server: %v", err)
	}

	// Without the test CA the certificate is not trusted.
	noCA := f.cfg
	noCA.CAFile = ""
	_, err := f.client(t, noCA).Authenticate(ctx, "jean.dupont", password)
	var unknown x509.UnknownAuthorityError
	if pigp.ErrorCode(err) != pigp.EDIRECTORY || !errors.As(err, &unknown) && !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

func TestCertificateMismatch(t *testing.T) {
	f := newFixture(t, slapdtest.Options{TLS: true, CertNames: []string{"annuaire.autre.invalid"}})
	ctx := context.Background()
	// The server is reached as localhost; its certificate names another host.
	for _, url := range []string{f.slapd.URL, f.slapd.LDAPSURL} {
		cfg := f.cfg
		cfg.URL = strings.Replace(url, "127.0.0.1", "localhost", 1)
		c := f.client(t, cfg)
		_, err := c.Authenticate(ctx, "jean.dupont", password)
		if pigp.ErrorCode(err) != pigp.EDIRECTORY {
			t.Fatalf("%s: certificate for another name accepted: %v", url, err)
		}
		if !strings.Contains(err.Error(), "certificate is valid for annuaire.autre.invalid, not localhost") {
			t.Fatalf("%s: error does not name the mismatch: %v", url, err)
		}
		if err := c.Check(ctx); pigp.ErrorCode(err) != pigp.EDIRECTORY {
			t.Fatalf("%s: Check: %v", url, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	f := newFixture(t, slapdtest.Options{})
	cfg := f.cfg
	cfg.Timeout, cfg.DialTimeout = time.Second, time.Second
	c := f.client(t, cfg)
	// A canceled context ends the attempt as "directory unavailable".
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Authenticate(ctx, "jean.dupont", password); pigp.ErrorCode(err) != pigp.EDIRECTORY {
		t.Fatalf("canceled context: %v", err)
	}
	if _, err := c.Authenticate(context.Background(), "jean.dupont", password); err != nil {
		t.Fatalf("after a canceled attempt: %v", err)
	}
}
