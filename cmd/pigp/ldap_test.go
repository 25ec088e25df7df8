package main

import (
	"context"
	"strings"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/internal/slapdtest"
)

func TestLDAPMapCLI(t *testing.T) {
	c := newCLI(t)
	c.addOrg(t, cliSIRETA)
	c.addOrg(t, cliSIRETB)
	const group = "CN=Paierie 94,OU=Groupes,DC=dgfip,DC=fr"

	out := c.ok(t, "ldap", "map", "--group", group, "--siret", cliSIRETA+","+cliSIRETB, "--role", "auditeur")
	if !strings.Contains(out, "2 association(s) créée(s)") || !strings.Contains(out, "aucun annuaire n'est configuré") {
		t.Fatalf("map printed %q", out)
	}
	// Mapping again sets the role; another spelling of the DN is the same group.
	out = c.ok(t, "ldap", "map", "--group", "cn=paierie 94, ou=groupes, dc=dgfip, dc=fr", "--siret", cliSIRETA, "--role", "operateur")
	if !strings.Contains(out, "0 association(s) créée(s), 1 mise(s) à jour") {
		t.Fatalf("second map printed %q", out)
	}
	c.ok(t, "ldap", "map", "--group", "cn=agents-paris,ou=groupes,dc=dgfip,dc=fr", "--siret", cliSIRETB)

	list := c.ok(t, "ldap", "map", "list")
	lines := strings.Split(strings.TrimRight(list, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "GROUPE") {
		t.Fatalf("map list printed %q", list)
	}
	for _, want := range []string{cliSIRETA + "  operateur", cliSIRETB + "  auditeur", cliSIRETB + "  agent"} {
		if !strings.Contains(list, want) {
			t.Fatalf("map list lacks %q:\n%s", want, list)
		}
	}

	c.fails(t, 2, "rôle", "", "ldap", "map", "--group", group, "--siret", cliSIRETA, "--role", "admin")
	c.fails(t, 2, "--group and --siret are required", "", "ldap", "map", "--group", group)
	c.fails(t, 1, "organisation 35600000000048 inconnue", "", "ldap", "map", "--group", group, "--siret", "35600000000048")
	c.fails(t, 1, "SIRET", "", "ldap", "map", "--group", group, "--siret", "123")
	c.fails(t, 1, "illisible", "", "ldap", "map", "--group", "pas un DN", "--siret", cliSIRETA)
	// Nothing of the refused commands was recorded.
	if l := c.ok(t, "ldap", "map", "list"); l != list {
		t.Fatalf("refused commands changed the mappings:\n%s", l)
	}

	out = c.ok(t, "ldap", "map", "remove", "--group", strings.ToLower(group), "--siret", cliSIRETB)
	if !strings.Contains(out, "1 association(s) supprimée(s)") {
		t.Fatalf("remove printed %q", out)
	}
	c.fails(t, 1, "aucune association", "", "ldap", "map", "remove", "--group", group, "--siret", cliSIRETB)
	out = c.ok(t, "ldap", "map", "remove", "--group", group)
	if !strings.Contains(out, "1 association(s) supprimée(s)") {
		t.Fatalf("remove all printed %q", out)
	}

	// Mapping changes are operator actions in the audit trail; listing is not.
	events, err := c.openDB(t).ListAudit(context.Background(), pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var maps, lists int
	for _, e := range events {
		if e.Action == pigp.AuditOperator && strings.Contains(e.Object, "ldap map") {
			maps++
			if strings.Contains(e.Object, "ldap map list") {
				lists++
			}
		}
	}
	// 3 maps, the one refused by the database (unknown organisation; the
	// usage mistakes are refused before anything is opened), 3 removals.
	if maps != 7 || lists != 0 {
		t.Fatalf("audit: %d ldap map rows (%d list); want 7 and 0", maps, lists)
	}
}

func TestLDAPCheckAndUserSource(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{TLS: true, RequireTLS: true})
	jean := s.AddPerson("jean.dupont", "Annuaire-Secret-1", "Jean Dupont", "jean.dupont@dgfip.test")
	s.AddGroup("pigp-siret-"+cliSIRETA, jean)

	c := newCLI(t)
	// StartTLS is the default: only the CA is needed besides the DNs.
	for k, v := range map[string]string{"PIGP_LDAP_URL": s.URL, "PIGP_LDAP_CA_FILE": s.CAFile,
		"PIGP_LDAP_BIND_DN": slapdtest.ServiceDN, "PIGP_LDAP_BIND_PASSWORD": slapdtest.ServicePassword,
		"PIGP_LDAP_BASE_DN": slapdtest.BaseDN} {
		c.env[k] = v
	}
	c.addOrg(t, cliSIRETA)

	if out := c.ok(t, "ldap", "check"); !strings.Contains(out, "connexion et compte de service OK") {
		t.Fatalf("check printed %q", out)
	}
	r := c.run(t, "Annuaire-Secret-1\n", "ldap", "check", "--login", "jean.dupont", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "habilitation : SIRET "+cliSIRETA+", rôle agent") ||
		!strings.Contains(r.stdout, "Jean Dupont <jean.dupont@dgfip.test>") {
		t.Fatalf("check --login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	c.fails(t, 1, "identifiant ou mot de passe incorrect", "faux\n", "ldap", "check", "--login", "jean.dupont", "--password-stdin")
	c.fails(t, 1, "identifiant local", "x\n", "ldap", "check", "--login", "pmartin-xt", "--password-stdin")

	// With a directory, only local-shaped logins can be local accounts.
	c.fails(t, 1, "se connectent avec l'annuaire", "", "user", "add", "--login", "jean.dupont", "--siret", cliSIRETA,
		"--name", "Jean Dupont", "--email", "j@ex.fr")
	c.ok(t, "user", "add", "--login", "pmartin-xt", "--siret", cliSIRETA, "--name", "Pierre Martin", "--email", "p@ex.fr")

	// The shadow row phase B's login writes: user list shows the source.
	db := c.openDB(t)
	if _, err := db.UpsertDirectoryAccount(context.Background(), &pigp.DirectoryAccount{Login: "jean.dupont",
		DN: jean, Name: "Jean Dupont", Email: "jean.dupont@dgfip.test",
		Grants: []pigp.Grant{{SIRET: cliSIRETA, Role: pigp.RoleAgent}}}); err != nil {
		t.Fatal(err)
	}
	list := c.ok(t, "user", "list")
	var jeanRow, pierreRow string
	for _, l := range strings.Split(list, "\n") {
		switch {
		case strings.HasPrefix(l, "jean.dupont "):
			jeanRow = l
		case strings.HasPrefix(l, "pmartin-xt "):
			pierreRow = l
		}
	}
	if !strings.Contains(list, "ORIGINE") || !strings.Contains(jeanRow, "annuaire (vu le ") || !strings.Contains(pierreRow, " local ") {
		t.Fatalf("user list:\n%s", list)
	}
	c.fails(t, 1, "compte de l'annuaire", "", "user", "reset-password", "--login", "jean.dupont")

	s.Stop()
	c.fails(t, 1, "Connexion à l'annuaire impossible", "", "ldap", "check")
}

// TestReadyzDirectory: the portal of a pigp with a directory reports it
// degraded (200) while slapd is stopped and ready again once it is back,
// without a restart; local logins work meanwhile.
func TestReadyzDirectory(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{})
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.LDAP.URL, c.LDAP.StartTLS = s.URL, false
		c.LDAP.BindDN, c.LDAP.BindPassword, c.LDAP.BaseDN = slapdtest.ServiceDN, slapdtest.ServicePassword, slapdtest.BaseDN
	})
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	p := newPortal(t, "http://"+e.app.Web.ListenAddr().String())
	ready := func(want string) {
		t.Helper()
		if status, body := p.get("/readyz"); status != 200 || strings.TrimSpace(body) != want {
			t.Fatalf("readyz: %d %q; want 200 %q", status, body, want)
		}
	}
	ready("ready")
	s.Stop()
	ready("degraded: directory unavailable")
	// A local (-xt) account still logs in over SFTP.
	c, _ := e.dialSFTP("alice-xt", e.alice)
	if _, err := c.ReadDir("/retrait"); err != nil {
		t.Fatalf("local login with the directory down: %v", err)
	}
	s.Restart()
	ready("ready")
}
