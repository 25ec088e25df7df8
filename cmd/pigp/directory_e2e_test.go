package main

// Internal agents sign in with the directory (issue 18, phase B): a real
// OpenLDAP (internal/slapdtest), a running pigp, real clients.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	encsv "encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/directory"
	"github.com/pigp/pigp/internal/slapdtest"
)

const agentPassword = "Annuaire-Secret-1"

// dirEnv is a pigp (SFTP and portal) with a directory: jean.dupont is an
// agent of siretA (group cn=pigp-siret-<siretA>), sophie.leroy an auditeur
// of siretA (a group mapped with `pigp ldap map`), paul.martin in no group
// that grants anything.
type dirEnv struct {
	*env
	slapd *slapdtest.Server
	base  string // the portal
}

func startDirEnv(t *testing.T, kind string, opt slapdtest.Options, tweak func(c *config.Config)) *dirEnv {
	t.Helper()
	s := slapdtest.Start(t, opt)
	jean := s.AddPerson("jean.dupont", agentPassword, "Jean Dupont", "jean.dupont@dgfip.test")
	sophie := s.AddPerson("sophie.leroy", agentPassword, "Sophie Leroy", "sophie.leroy@dgfip.test")
	paul := s.AddPerson("paul.martin", agentPassword, "Paul Martin", "")
	s.AddGroup("pigp-siret-"+siretA, jean)
	controle := s.AddGroup("Controle Paierie 94", sophie)
	s.AddGroup("informatique", paul)
	e := startEnv(t, kind, func(c *config.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.LDAP.URL, c.LDAP.StartTLS = s.URL, false
		if opt.TLS {
			c.LDAP.StartTLS, c.LDAP.CAFile = true, s.CAFile
		}
		c.LDAP.BindDN, c.LDAP.BindPassword, c.LDAP.BaseDN = slapdtest.ServiceDN, slapdtest.ServicePassword, slapdtest.BaseDN
		c.LDAP.Timeout = config.Duration(5 * time.Second)
		if tweak != nil {
			tweak(c)
		}
	})
	key, err := directory.CanonicalDN(controle)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.app.DB.SaveGroupMappings(context.Background(), []*pigp.GroupMapping{
		{GroupDN: controle, GroupKey: key, SIRET: siretA, Role: pigp.RoleAuditeur}}); err != nil {
		t.Fatal(err)
	}
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	return &dirEnv{env: e, slapd: s, base: "http://" + e.app.Web.ListenAddr().String()}
}

// sshLogin tries a password login from src and returns the banner.
func (e *dirEnv) sshLogin(src, login, password string) (string, error) {
	c, banner, err := e.dialFrom(src, login, ssh.Password(password))
	if err == nil {
		c.Close()
	}
	return banner, err
}

// portalLogin posts the login form and returns the status and the page.
func (e *dirEnv) portalLogin(t *testing.T, p *portal, login, password string) (int, string) {
	t.Helper()
	form := url.Values{"csrf": {p.csrf("/connexion")}, "identifiant": {login}, "motdepasse": {password}}
	req, _ := http.NewRequest("POST", p.base+"/connexion", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return p.do(req)
}

// portalFrom is a portal client whose connections come from src.
func (e *dirEnv) portalFrom(t *testing.T, src string) *portal {
	p := newPortal(t, e.base)
	p.client.Transport = &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	return p
}

func (e *dirEnv) shadow(t *testing.T, login string) *pigp.Account {
	t.Helper()
	a, err := e.app.DB.FindAccountByLogin(context.Background(), login)
	if err != nil || !a.FromDirectory() {
		t.Fatalf("shadow row of %s: %+v, %v", login, a, err)
	}
	return a
}

func loginRows(evs []*pigp.AuditEvent, login, outcome, detail string) int {
	return countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditLogin && a.Login == login && a.Outcome == outcome && strings.Contains(a.Detail, detail)
	})
}

// TestDirectoryAgents: an agent of a SIRET group deposits over SFTP
// (pkg/sftp and OpenSSH) and on the portal, and retrieves a response, all
// recorded under its shadow row; an agent whom no group grants anything, a
// wrong or empty password and an injection are refused like a wrong local
// password, audited and throttled; a key login and a password change are
// refused to agents; an auditeur reads the histories and exports the audit
// trail of its SIRET only.
func TestDirectoryAgents(t *testing.T) {
	needTool(t, "sftp", "sshpass")
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startDirEnv(t, kind, slapdtest.Options{}, nil)
			testDirectoryAgents(t, e)
		})
	}
}

func testDirectoryAgents(t *testing.T, e *dirEnv) {
	ctx := context.Background()

	// 1. The agent deposits with pkg/sftp; the deposit is the shadow row's.
	c, _ := e.dialSFTP("jean.dupont", agentPassword)
	jean := e.shadow(t, "jean.dupont")
	if jean.Name != "Jean Dupont" || jean.Email != "jean.dupont@dgfip.test" || len(jean.SIRETs) != 1 || jean.SIRETs[0] != siretA {
		t.Fatalf("shadow row: %+v", jean)
	}
	name1, content1 := callName(siretA, 1), randomBytes(20_000)
	f, err := c.Create("/depot/" + name1)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(content1)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// ... and with OpenSSH sftp in batch mode (sshpass).
	dir := t.TempDir()
	name2, content2 := callName(siretA, 2), randomBytes(5_000)
	os.WriteFile(filepath.Join(dir, name2), content2, 0o600)
	resp := e.publish(siretA, "2026_"+siretA+"_20261128101500_REP.xml", []byte("<ReponseAPA/>\n"))
	out, err := e.sftpBatch("jean.dupont", agentPassword, "put "+name2+" /depot/\nget /retrait/"+resp.Name+"\n", dir)
	if err != nil {
		t.Fatalf("OpenSSH sftp as an agent: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, resp.Name)); string(got) != "<ReponseAPA/>\n" {
		t.Fatalf("response retrieved: %q", got)
	}
	// ... and on the portal.
	p := newPortal(t, e.base)
	p.login("Jean.Dupont", agentPassword)
	if _, body := p.get("/applications"); strings.Contains(body, `id="expiration"`) || !strings.Contains(body, `id="annuaire"`) {
		t.Fatal("the applications page shows a password expiry to an agent")
	}
	name3 := callName(siretA, 3)
	if status, body := p.upload(name3, []byte("<appel/>")); status != http.StatusOK {
		t.Fatalf("portal deposit: %d %s", status, body)
	}
	byName := map[string]*pigp.Deposit{}
	for _, d := range e.deposits(siretA) {
		byName[d.ExternalName] = d
	}
	for _, n := range []string{name1, name2, name3} {
		if d := byName[n]; d == nil || d.AccountID != jean.ID || d.Login != "jean.dupont" {
			t.Fatalf("deposit %s: %+v, want jean's shadow row %d", n, d, jean.ID)
		}
	}
	if d := byName[name1]; d.SHA256 != sha(content1) {
		t.Fatalf("deposit content: %s", d.SHA256)
	}
	dls, err := e.app.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
	if err != nil || len(dls) != 1 || dls[0].AccountID != jean.ID || dls[0].Login != "jean.dupont" {
		t.Fatalf("downloads: %+v, %v", dls, err)
	}

	// 2. Key logins are the local accounts': refused to an agent, even
	// with a key recorded for its shadow row behind the CLI's back.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	k, err := pigp.ParseSSHKey(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	k.AccountID = jean.ID
	if err := e.app.DB.AddSSHKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.dialFrom("127.0.0.1", "jean.dupont", ssh.PublicKeys(signer)); err == nil {
		t.Fatal("key login accepted for a directory agent")
	}
	// Keyboard-interactive: the password, and never a change prompt.
	prompts := 0
	kc, _, err := e.dialFrom("127.0.0.1", "jean.dupont", ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
		prompts += len(qs)
		ans := make([]string, len(qs))
		for i := range ans {
			ans[i] = agentPassword
		}
		return ans, nil
	}))
	if err != nil || prompts != 1 {
		t.Fatalf("keyboard-interactive as an agent: %v, %d prompts (want 1)", err, prompts)
	}
	kc.Close()

	// 3. The portal's password change answers with the directory's
	// procedure and changes nothing.
	if _, body := p.get("/mot-de-passe"); !strings.Contains(body, "celui de l&#39;annuaire") || strings.Contains(body, `id="nouveau"`) {
		t.Fatalf("password page of an agent:\n%s", body)
	}
	form := url.Values{"csrf": {p.csrf("/mot-de-passe")}, "actuel": {agentPassword}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-42"}}
	req, _ := http.NewRequest("POST", e.base+"/mot-de-passe", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, body := p.do(req); status != http.StatusForbidden || !strings.Contains(body, "pigp ne peut pas le changer") {
		t.Fatalf("password change of an agent: %d\n%s", status, body)
	}
	if _, err := e.sshLogin("127.0.0.1", "jean.dupont", agentPassword); err != nil {
		t.Fatalf("the directory's password no longer works: %v", err)
	}

	// 4. Refusals: no group, wrong, empty, injection; one answer.
	local := newPortal(t, e.base)
	_, wrongLocal := e.portalLogin(t, local, "alice-xt", "Wrong-Horse-42")
	for _, tt := range []struct{ src, login, password string }{
		{"127.0.0.11", "paul.martin", agentPassword},
		{"127.0.0.12", "jean.dupont", "Wrong-Horse-42"},
		{"127.0.0.13", "jean.dupont", ""},
		{"127.0.0.14", "*)(uid=*", agentPassword},
		{"127.0.0.15", "*", agentPassword},
	} {
		if banner, err := e.sshLogin(tt.src, tt.login, tt.password); err == nil || banner != "" {
			t.Fatalf("SSH %q/%q: accepted or said why (%v, banner %q)", tt.login, tt.password, err, banner)
		}
		status, body := e.portalLogin(t, newPortal(t, e.base), tt.login, tt.password)
		if status != http.StatusUnauthorized || alertOf(body) != alertOf(wrongLocal) {
			t.Fatalf("portal %q/%q: %d %q, want the answer of a wrong local password %q", tt.login, tt.password, status, alertOf(body), alertOf(wrongLocal))
		}
	}
	if n, _ := e.app.DB.FindAccountByLogin(ctx, "paul.martin"); n != nil {
		t.Fatal("a shadow row for an agent whom no group grants anything")
	}
	// Throttled like local logins: the pair is blocked after 4 failures.
	for i := range 4 {
		e.sshLogin("127.0.0.16", "jean.dupont", "Wrong-"+string(rune('a'+i)))
	}
	if banner, err := e.sshLogin("127.0.0.16", "jean.dupont", agentPassword); err == nil || !strings.Contains(banner, "Trop de tentatives") {
		t.Fatalf("blocked pair: %v, banner %q", err, banner)
	}
	evs := e.audit(t)
	for _, want := range []struct{ login, detail string }{
		{"paul.martin", "aucun groupe de l'annuaire"},
		{"jean.dupont", "annuaire : identifiant ou mot de passe incorrect"},
		{"jean.dupont", "annuaire : mot de passe vide"},
		{"*)(uid=*", "annuaire : identifiant ou mot de passe incorrect"},
	} {
		if loginRows(evs, want.login, pigp.AuditFailed, want.detail) == 0 {
			t.Errorf("no failed login row of %q with %q", want.login, want.detail)
		}
	}
	if n := loginRows(evs, "jean.dupont", pigp.AuditOK, "annuaire"); n < 4 {
		t.Errorf("%d successful directory logins of jean audited, want 4 or more", n)
	}

	// 5. The auditeur reads the histories of siretA, deposits nothing,
	// retrieves nothing, records no download.
	ac, aconn := e.dialSFTP("sophie.leroy", agentPassword)
	csv, err := ac.Open("/historique/depots.csv")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(csv)
	csv.Close()
	if !strings.Contains(buf.String(), name1) || !strings.Contains(buf.String(), name3) {
		t.Fatalf("auditeur's depots.csv:\n%s", buf.String())
	}
	if _, err := ac.OpenFile("/depot/"+callName(siretA, 4), os.O_WRONLY|os.O_CREATE|os.O_TRUNC); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("auditeur's SFTP deposit: %v", err)
	}
	if _, code, msg := newRawSFTP(t, aconn).Open("/depot/"+callName(siretA, 4), 0x1a); code != fxPermissionDenied ||
		!strings.Contains(msg, "Profil auditeur : lecture seule pour le SIRET "+siretA) {
		t.Fatalf("auditeur's SFTP deposit: %d %q", code, msg)
	}
	if fis, err := ac.ReadDir("/retrait"); err != nil || len(fis) != 0 {
		t.Fatalf("auditeur's /retrait: %v, %v", fis, err)
	}
	if rf, err := ac.Open("/retrait/" + resp.Name); err == nil {
		var b bytes.Buffer
		_, rerr := b.ReadFrom(rf)
		rf.Close()
		if rerr == nil {
			t.Fatal("auditeur read a response over SFTP")
		}
	}
	ap := newPortal(t, e.base)
	ap.login("sophie.leroy", agentPassword)
	if _, body := ap.get("/apa/historique-depots"); !strings.Contains(body, name1) {
		t.Fatal("auditeur's deposit history lacks jean's deposit")
	}
	if _, body := ap.get("/apa/depot"); !strings.Contains(body, `id="lecture-seule"`) || strings.Contains(body, `id="form-depot"`) {
		t.Fatal("the deposit page offers its form to an auditeur")
	}
	if status, body := ap.upload(callName(siretA, 5), []byte("<appel/>")); status != http.StatusForbidden || !strings.Contains(body, "Profil auditeur") {
		t.Fatalf("auditeur's portal deposit: %d %s", status, body)
	}
	if status, _ := ap.get("/apa/retrait/" + resp.Name); status != http.StatusForbidden {
		t.Fatalf("auditeur's portal download: %d", status)
	}
	if status, body := ap.get("/apa/historique/retraits.csv"); status != 200 || !strings.Contains(body, resp.Name) {
		t.Fatalf("auditeur's retraits.csv: %d\n%s", status, body)
	}
	// The audit export: siretA's rows only (not bob's login for siretB),
	// the export's own row last; refused to the agent.
	if _, err := e.sshLogin("127.0.0.1", "bob-xt", e.bob); err != nil {
		t.Fatal(err)
	}
	status, body := ap.get("/apa/journal-audit/export")
	rows, ok := strings.CutPrefix(body, utf8BOM+strings.Join(pigp.AuditHeader, ";")+"\r\n")
	if status != 200 || !ok || !strings.Contains(rows, name1) || !strings.Contains(rows, "jean.dupont") {
		t.Fatalf("auditeur's audit export: %d\n%s", status, body)
	}
	cr := encsv.NewReader(strings.NewReader(rows))
	cr.Comma = ';'
	records, err := cr.ReadAll()
	if err != nil || len(records) < 3 {
		t.Fatalf("audit export: %v, %q", err, records)
	}
	for _, r := range records {
		if !slices.Contains(strings.Split(r[5], ","), siretA) || r[4] == "bob-xt" {
			t.Fatalf("a row of another SIRET in the auditeur's export: %q", r)
		}
	}
	if last := records[len(records)-1]; last[2] != pigp.AuditExport || last[4] != "sophie.leroy" || last[5] != siretA {
		t.Fatalf("the export's own row: %q", last)
	}
	if status, body := p.get("/apa/journal-audit/export"); status != http.StatusForbidden || !strings.Contains(body, "réservé au profil auditeur") {
		t.Fatalf("agent's audit export: %d", status)
	}
	sophie := e.shadow(t, "sophie.leroy")
	dls, _ = e.app.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
	for _, d := range dls {
		if d.AccountID == sophie.ID {
			t.Fatalf("a download recorded for the auditeur: %+v", d)
		}
	}
	if got := len(e.deposits(siretA)); got != 3 {
		t.Fatalf("%d deposits, want jean's 3", got)
	}
}

// alertOf returns the text of a page's error alert.
func alertOf(body string) string {
	_, rest, ok := strings.Cut(body, `fr-alert--error`)
	if !ok {
		return ""
	}
	_, rest, _ = strings.Cut(rest, "<p>")
	msg, _, _ := strings.Cut(rest, "</p>")
	return msg
}

// TestDirectoryOutage: with slapd stopped, local logins work, agents are
// told "Connexion à l'annuaire impossible" (SSH banner, portal 503),
// /readyz says degraded, and the guard counts nothing: once slapd is back
// the same agent from the same address logs in, without restarting pigp.
func TestDirectoryOutage(t *testing.T) {
	e := startDirEnv(t, "sqlite", slapdtest.Options{}, nil)
	if _, err := e.sshLogin("127.0.0.21", "jean.dupont", agentPassword); err != nil {
		t.Fatalf("before the outage: %v", err)
	}
	e.slapd.Stop()
	if _, err := e.sshLogin("127.0.0.21", "alice-xt", e.alice); err != nil {
		t.Fatalf("local login during the outage: %v", err)
	}
	p := e.portalFrom(t, "127.0.0.21")
	for range 6 { // more than the pair's free failures
		banner, err := e.sshLogin("127.0.0.21", "jean.dupont", agentPassword)
		if err == nil || !strings.HasPrefix(banner, "Connexion à l'annuaire impossible") {
			t.Fatalf("SSH during the outage: %v, banner %q", err, banner)
		}
		status, body := e.portalLogin(t, p, "jean.dupont", agentPassword)
		if status != http.StatusServiceUnavailable || !strings.Contains(alertOf(body), "Connexion à l&#39;annuaire impossible") {
			t.Fatalf("portal during the outage: %d %q", status, alertOf(body))
		}
	}
	if status, body := p.get("/readyz"); status != 200 || strings.TrimSpace(body) != "degraded: directory unavailable" {
		t.Fatalf("readyz: %d %q", status, body)
	}
	if wait, err := e.app.Guard.Check(context.Background(), "127.0.0.21", "jean.dupont"); err != nil || wait != 0 {
		t.Fatalf("the outage was counted by the guard: wait %s, %v", wait, err)
	}
	e.slapd.Restart()
	if _, err := e.sshLogin("127.0.0.21", "jean.dupont", agentPassword); err != nil {
		t.Fatalf("after slapd restarted: %v", err)
	}
	e.portalFrom(t, "127.0.0.21").login("jean.dupont", agentPassword)
	evs := e.audit(t)
	if n := loginRows(evs, "jean.dupont", pigp.AuditFailed, "annuaire injoignable"); n == 0 {
		t.Fatal("the outage's refusals are not audited")
	}
}

// TestDirectoryTLS: StartTLS with the test CA end to end (the server
// refuses anything before StartTLS), and a directory whose certificate
// names another host refused: its agents are told the directory cannot be
// reached, the password is never sent, local logins go on.
func TestDirectoryTLS(t *testing.T) {
	t.Run("StartTLS", func(t *testing.T) {
		e := startDirEnv(t, "sqlite", slapdtest.Options{TLS: true, RequireTLS: true}, nil)
		c, _ := e.dialSFTP("jean.dupont", agentPassword)
		f, err := c.Create("/depot/" + callName(siretA, 1))
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("<appel/>"))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CertificateMismatch", func(t *testing.T) {
		e := startDirEnv(t, "sqlite", slapdtest.Options{TLS: true, CertNames: []string{"annuaire.example"}}, nil)
		banner, err := e.sshLogin("127.0.0.1", "jean.dupont", agentPassword)
		if err == nil || !strings.HasPrefix(banner, "Connexion à l'annuaire impossible") {
			t.Fatalf("directory with a mismatched certificate: %v, banner %q", err, banner)
		}
		if _, err := e.sshLogin("127.0.0.1", "alice-xt", e.alice); err != nil {
			t.Fatalf("local login: %v", err)
		}
	})
}

// TestDirectoryPortalBrowser drives the portal in headless Chromium as an
// internal agent: log in with the directory's password, no expiry shown,
// a deposit with the page's form, the password page pointing to the
// directory; an auditeur finds no deposit form but the history, and
// downloads the audit export of its SIRET (checkAuditExportBrowser); with the
// directory stopped, the login page says "Connexion à l'annuaire
// impossible".
func TestDirectoryPortalBrowser(t *testing.T) {
	chromiumPath(t)
	e := startDirEnv(t, "sqlite", slapdtest.Options{}, nil)
	ctx, step, text := startBrowser(t, "")
	exists := func(sel string) bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
		return err == nil && n
	}
	login := func(user, wait string) {
		t.Helper()
		step("log in as "+user, chromedp.Navigate(e.base+"/connexion"), chromedp.WaitVisible("#identifiant"),
			chromedp.SendKeys("#identifiant", user), chromedp.SendKeys("#motdepasse", agentPassword),
			chromedp.Click(`#form-connexion button[type="submit"]`), chromedp.WaitVisible(wait))
	}
	logout := func() {
		step("logout", chromedp.Navigate(e.base+"/applications"), chromedp.WaitVisible("main"),
			chromedp.Click(`main form[action="/deconnexion"] button`), chromedp.WaitVisible("#identifiant"))
	}

	login("jean.dupont", "#annuaire")
	if exists("#expiration") || exists("#expiration-rappel") {
		t.Fatal("the applications page shows a password expiry to an agent")
	}
	if got := text("#titulaire"); got != "JEAN DUPONT" {
		t.Fatalf("name shown %q", got)
	}
	name := callName(siretA, 1)
	file := filepath.Join(t.TempDir(), name)
	os.WriteFile(file, bytes.Repeat([]byte("<DemandeAPA/>\n"), 1000), 0o600)
	step("upload", chromedp.Navigate(e.base+"/apa/depot"), chromedp.WaitVisible("#fichier"),
		chromedp.SetUploadFiles("#fichier", []string{file}), chromedp.Click("#depot-envoyer"),
		chromedp.WaitVisible("#depot-resultat .fr-alert--success"))
	jean := e.shadow(t, "jean.dupont")
	if ds := e.deposits(siretA); len(ds) != 1 || ds[0].ExternalName != name || ds[0].AccountID != jean.ID {
		t.Fatalf("deposits: %+v", ds)
	}
	step("password page", chromedp.Navigate(e.base+"/mot-de-passe"), chromedp.WaitVisible("#annuaire"))
	if got := text("#annuaire"); got != pigp.MsgDirectoryPasswordManaged || exists("#nouveau") {
		t.Fatalf("password page of an agent: %q (form shown: %v)", got, exists("#nouveau"))
	}
	step("agent's history", chromedp.Navigate(e.base+"/apa/historique-depots"), chromedp.WaitVisible("#table-depots"))
	if exists("#onglet-journal-audit") || !exists(`a[href="/apa/historique-retraits"]`) {
		t.Fatal("the audit export's tab is shown to an agent")
	}
	logout()
	// Another organisation's deposit, which the auditeur's export leaves out.
	otherName := callName(siretB, 2)
	bc, _ := e.dialSFTP("bob-xt", e.bob)
	bf, err := bc.Create("/depot/" + otherName)
	if err != nil {
		t.Fatal(err)
	}
	bf.Write([]byte("<DemandeAPA/>"))
	if err := bf.Close(); err != nil {
		t.Fatal(err)
	}

	login("sophie.leroy", "#annuaire")
	step("auditeur's deposit page", chromedp.Navigate(e.base+"/apa/depot"), chromedp.WaitVisible("#lecture-seule"))
	if exists("#fichier") {
		t.Fatal("the deposit form is offered to an auditeur")
	}
	step("auditeur's history", chromedp.Navigate(e.base+"/apa/historique-depots"), chromedp.WaitVisible("#table-depots"))
	if got := text("#table-depots"); !strings.Contains(got, name) {
		t.Fatalf("auditeur's deposit history: %q", got)
	}
	checkAuditExportBrowser(t, e, ctx, step, text, name, otherName)
	logout()

	e.slapd.Stop()
	step("login with the directory down", chromedp.Navigate(e.base+"/connexion"), chromedp.WaitVisible("#identifiant"),
		chromedp.SendKeys("#identifiant", "jean.dupont"), chromedp.SendKeys("#motdepasse", agentPassword),
		chromedp.Click(`#form-connexion button[type="submit"]`), chromedp.WaitVisible(".fr-alert--error"))
	if got := text(".fr-alert--error"); !strings.HasPrefix(got, "Connexion à l'annuaire impossible") {
		t.Fatalf("login page with the directory down: %q", got)
	}
}

// checkAuditExportBrowser: the auditeur (sophie.leroy, auditeur of siretA)
// opens the "Journal d'audit" tab and downloads the export with the page's
// button, as a browser saves it: the byte-order mark, the 13-column
// header, siretA's rows only (jean's deposit mine in, bob's deposit of
// siretB other out), and last the export's own row.
func checkAuditExportBrowser(t *testing.T, e *dirEnv, ctx context.Context, step func(string, ...chromedp.Action[chromedp.Void]),
	text func(string) string, mine, other string) {
	t.Helper()
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	step("audit export page", chromedp.Click("#onglet-journal-audit", chromedp.NodeVisible), chromedp.WaitVisible("#form-journal-audit"))
	if got := text("#journal-audit-siret"); got != siretA {
		t.Fatalf("audited SIRETs shown: %q", got)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(screenshotDir(t), "annuaire-journal-audit.png"), png, 0o644)
	}
	step("audit export", chromedp.Click("#journal-audit-telecharger", chromedp.NodeVisible))
	today := time.Now().In(apa.Paris)
	file := filepath.Join(downloads, "journal-audit_"+today.AddDate(-1, 0, 0).Format("2006-01-02")+"_"+today.Format("2006-01-02")+".csv")
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if b, err = os.ReadFile(file); err == nil && bytes.HasSuffix(b, []byte("\r\n")) {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(downloads)
			t.Fatalf("the audit export did not arrive as %s: %v", filepath.Base(file), entries)
		}
	}
	body, ok := bytes.CutPrefix(b, []byte(utf8BOM))
	if !ok {
		t.Fatalf("the audit export has no byte-order mark: %q", b[:min(len(b), 16)])
	}
	cr := encsv.NewReader(bytes.NewReader(body))
	cr.Comma = ';'
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 || !slices.Equal(rows[0], pigp.AuditHeader) {
		t.Fatalf("audit export: %q", rows)
	}
	for _, r := range rows[1:] {
		if !slices.Contains(strings.Split(r[5], ","), siretA) || r[4] == "bob-xt" {
			t.Fatalf("a row of another SIRET in the auditeur's export: %q", r)
		}
	}
	if !bytes.Contains(body, []byte(mine)) || bytes.Contains(body, []byte(other)) {
		t.Fatalf("the audit export lacks %s or holds %s:\n%s", mine, other, body)
	}
	last := rows[len(rows)-1]
	if last[2] != pigp.AuditExport || last[3] != pigp.AuditOK || last[4] != "sophie.leroy" || last[5] != siretA {
		t.Fatalf("the export's own row: %q", last)
	}
	if rep, err := e.app.DB.VerifyAudit(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("audit chain: %+v, %v", rep, err)
	}
}
