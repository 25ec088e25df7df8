package web_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/exchange"
)

const (
	siretOther    = "22750001100019"
	agentPassword = "Annuaire-Secret-1"
)

// agents is a directory of two internal agents: sophie.leroy audits siret
// and acts as an agent for siretOther, jean.dupont is an agent of siret.
type agents struct{}

func (agents) IsLocal(login string) bool { return strings.HasSuffix(login, "-xt") }

func (agents) Authenticate(_ context.Context, login, password string) (*pigp.DirectoryAccount, error) {
	grants := map[string][]pigp.Grant{
		"sophie.leroy": {{SIRET: siret, Role: pigp.RoleAuditeur}, {SIRET: siretOther, Role: pigp.RoleAgent}},
		"jean.dupont":  {{SIRET: siret, Role: pigp.RoleAgent}},
	}[login]
	if grants == nil || password != agentPassword {
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, "Identifiant ou mot de passe incorrect.")
	}
	return &pigp.DirectoryAccount{Login: login, DN: "uid=" + login + ",dc=test", Name: login, Email: login + "@dgfip.test",
		Grants: pigp.NormalizeGrants(grants)}, nil
}

func (agents) AuditDetail(error) string { return "identifiant ou mot de passe incorrect" }

// TestPortalAuditExport: an auditeur finds the "Journal d'audit" tab and
// downloads the export of its audited SIRET only, over a period; the
// export is audited; a local account and an agent get a French 403 page
// and no link; a bad date is refused.
func TestPortalAuditExport(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.ex.Audit = f.db
		f.ex.Directory = agents{}
	})
	ctx := context.Background()
	if err := f.db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretOther, Name: "Paris"}); err != nil {
		t.Fatal(err)
	}
	// A deposit for siret (the fixture's local account) and one for
	// siretOther (sophie, as its agent).
	b := f.browser()
	b.mustLogin()
	mine := callName(1)
	if r := b.upload(mine, []byte("<DemandeAPA/>"), true, b.csrf("/apa/depot")); r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := b.get("/apa/journal-audit"); r.status != http.StatusForbidden || !strings.Contains(r.body, "réservé au profil auditeur") {
		t.Fatalf("local account's audit page: %d", r.status)
	}
	if r := b.get("/apa/journal-audit/export"); r.status != http.StatusForbidden || !strings.Contains(r.body, "réservé au profil auditeur") ||
		r.header.Get("Content-Disposition") != "" {
		t.Fatalf("local account's audit export: %d %v", r.status, r.header)
	}
	if r := b.get("/apa/historique-depots"); strings.Contains(r.body, "/apa/journal-audit") {
		t.Fatal("the audit tab is shown to a local account")
	}

	sophie := f.browser()
	if r := sophie.login("sophie.leroy", agentPassword); r.status != http.StatusSeeOther {
		t.Fatalf("sophie's login: %d", r.status)
	}
	ts := time.Now().In(apa.Paris).Add(-time.Hour).Truncate(time.Second)
	other := apa.CallName{Campaign: ts.Year(), SIRET: siretOther, Timestamp: ts}.String()
	if r := sophie.upload(other, []byte("<DemandeAPA/>"), true, sophie.csrf("/apa/depot")); r.status != 200 {
		t.Fatalf("sophie's upload for %s: %d %s", siretOther, r.status, r.body)
	}
	r := sophie.get("/apa/historique-depots")
	mustContain(t, "sophie's history page", r.body, `href="/apa/journal-audit"`, "Journal d'audit")
	r = sophie.get("/apa/journal-audit")
	today := f.clock.Now().In(apa.Paris).Format("2006-01-02")
	if r.status != 200 {
		t.Fatalf("audit page: %d", r.status)
	}
	mustContain(t, "audit page", r.body, "Export du journal d'audit", `id="journal-audit-siret">`+siret+"<",
		`name="au" value="`+today+`"`, `name="du" value="`+f.clock.Now().In(apa.Paris).AddDate(-1, 0, 0).Format("2006-01-02")+`"`,
		`action="/apa/journal-audit/export"`, `aria-current="page"`, "empreinte_precedente")

	// A HEAD records no export (the rows recorded are counted below).
	head, _ := http.NewRequest(http.MethodHead, sophie.f.base+"/apa/journal-audit/export?du="+today+"&au="+today, nil)
	if r := sophie.do(head); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Fatalf("HEAD of the export: %d %v", r.status, r.header)
	}
	r = sophie.get("/apa/journal-audit/export?du=" + today + "&au=" + today)
	if r.status != 200 || r.header.Get("Content-Type") != "text/csv; charset=utf-8" || r.header.Get("Cache-Control") != "no-store" ||
		r.header.Get("Content-Disposition") != `attachment; filename="journal-audit_`+today+"_"+today+`.csv"` {
		t.Fatalf("export: %d %v\n%s", r.status, r.header, r.body)
	}
	body, ok := strings.CutPrefix(r.body, exchange.BOM)
	if !ok || !strings.HasPrefix(body, strings.Join(pigp.AuditHeader, ";")+"\r\n") {
		t.Fatalf("export's BOM and header: %q", r.body[:min(len(r.body), 200)])
	}
	cr := csv.NewReader(strings.NewReader(body))
	cr.Comma = ';'
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[1:]
	for _, row := range rows {
		if !slices.Contains(strings.Split(row[5], ","), siret) {
			t.Fatalf("a row of another SIRET: %q", row)
		}
	}
	if !strings.Contains(body, mine) || strings.Contains(body, other) {
		t.Fatalf("export: %s's deposit missing, or %s's present:\n%s", siret, siretOther, body)
	}
	last := rows[len(rows)-1]
	if last[2] != pigp.AuditExport || last[4] != "sophie.leroy" || last[5] != siret || last[7] != pigp.ProtocolHTTP {
		t.Fatalf("the export's own row: %q", last)
	}

	// A period before the deposits: only older rows, none here but the
	// anchor's (no SIRET), so the header alone.
	r = sophie.get("/apa/journal-audit/export?au=2020-01-31")
	if r.status != 200 || r.body != exchange.BOM+strings.Join(pigp.AuditHeader, ";")+"\r\n" ||
		!strings.Contains(r.header.Get("Content-Disposition"), "journal-audit_origine_2020-01-31.csv") {
		t.Fatalf("export up to 2020: %d %v %q", r.status, r.header, r.body)
	}
	for _, q := range []string{"du=31/01/2026", "au=demain", "du=2026-02-01&au=2026-01-01"} {
		if r := sophie.get("/apa/journal-audit/export?" + q); r.status != http.StatusBadRequest || r.header.Get("Content-Disposition") != "" ||
			!strings.Contains(r.body, "invalide") {
			t.Fatalf("export ?%s: %d %v", q, r.status, r.header)
		}
	}

	jean := f.browser()
	if r := jean.login("jean.dupont", agentPassword); r.status != http.StatusSeeOther {
		t.Fatalf("jean's login: %d", r.status)
	}
	if r := jean.get("/apa/journal-audit/export"); r.status != http.StatusForbidden || !strings.Contains(r.body, "réservé au profil auditeur") {
		t.Fatalf("agent's audit export: %d", r.status)
	}

	evs, err := f.db.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var exports []string
	for _, e := range evs {
		if e.Action == pigp.AuditExport {
			exports = append(exports, e.Login+" "+e.Outcome)
		}
	}
	// The local account's and the agent's refused exports are recorded
	// (a refused page is no export attempt, a bad date reaches no export).
	if got := strings.Join(exports, ","); got != login+" refus,sophie.leroy succes,sophie.leroy succes,jean.dupont refus" {
		t.Fatalf("export rows: %q", got)
	}
}
