package web_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
	"github.com/pigp/pigp/web"
)

const (
	siret    = "22940028800010"
	login    = "djouffre-xt"
	fullName = "Denis Jouffre"
)

// clock is a settable time source shared by the exchange and the portal.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a portal on 127.0.0.1 over a real exchange and SQLite store.
type fixture struct {
	t        *testing.T
	srv      *web.Server
	ex       *exchange.Service
	db       *store.DB
	blobs    *blob.Store
	clock    *clock
	base     string
	password string
}

func newFixture(t *testing.T, tweak func(f *fixture)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, store.SQLite, filepath.Join(dir, "pigp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now().UTC()}
	ex := exchange.New(db, blob.NewFS(blobs), blobs, nil)
	ex.Now = clk.Now
	db.Now = clk.Now
	f := &fixture{t: t, ex: ex, db: db, blobs: blobs, clock: clk}
	if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siret, Name: "Département du Val-de-Marne"}); err != nil {
		t.Fatal(err)
	}
	f.password = f.addAccount(login, false, clk.Now().AddDate(1, 0, 0))
	logs := &bytes.Buffer{}
	f.srv = &web.Server{
		Config:   web.Config{Addr: "127.0.0.1:0", Now: clk.Now, Schemas: apa.Schemas(), MaxUploadSize: ex.MaxUploadSize},
		Exchange: ex, History: db, DB: db, Sessions: db,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(f)
	}
	if err := f.srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.srv.Close(context.Background())
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	f.base = "http://" + f.srv.ListenAddr().String()
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) addAccount(name string, temporary bool, expires time.Time) string {
	f.t.Helper()
	pw := pigp.GeneratePassword(16)
	hash, _ := pigp.HashPassword(pw)
	a := &pigp.Account{Login: name, Name: fullName, Email: name + "@example.fr", SIRETs: []string{siret},
		PasswordHash: hash, PasswordSetAt: f.clock.Now(), PasswordExpiresAt: expires, PasswordTemporary: temporary,
		State: pigp.AccountActive}
	if err := f.db.CreateAccount(context.Background(), a); err != nil {
		f.t.Fatal(err)
	}
	return pw
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t      *testing.T
	f      *fixture
	client *http.Client
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: f.t, f: f, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) reply {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) reply {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.f.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) reply {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the token of the forms of path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("GET %s: no CSRF token in the page (status %d)", path, r.status)
	}
	return m[1]
}

func (b *browser) login(user, password string) reply {
	b.t.Helper()
	return b.post("/connexion", url.Values{"csrf": {b.csrf("/connexion")}, "identifiant": {user}, "motdepasse": {password}})
}

func (b *browser) mustLogin() {
	b.t.Helper()
	if r := b.login(login, b.f.password); r.status != http.StatusSeeOther || r.header.Get("Location") != "/applications" {
		b.t.Fatalf("login: status %d location %q, want 303 /applications\n%s", r.status, r.header.Get("Location"), r.body)
	}
}

// upload posts a file as the page's script does (JSON reply) or as the
// plain form (HTML reply).
func (b *browser) upload(name string, content []byte, script bool, token string) reply {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if token != "" {
		mw.WriteField("csrf", token)
	}
	fw, _ := mw.CreateFormFile("fichier", name)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", b.f.base+"/apa/depot", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if script {
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
	}
	return b.do(req)
}

func callName(n int) string {
	ts := time.Now().In(apa.Paris).Add(-time.Hour).Add(time.Duration(n) * time.Second).Truncate(time.Second)
	return apa.CallName{Campaign: ts.Year(), SIRET: siret, Timestamp: ts}.String()
}

// mustContain checks the text of a page: entities decoded, and the
// line-break opportunities (<wbr>) of file names removed.
func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	body = html.UnescapeString(strings.ReplaceAll(body, "<wbr>", ""))
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Fatalf("%s does not contain %q", what, w)
		}
	}
}

func TestPortalLoginApplicationsLogout(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	if r := b.get("/applications"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/connexion" {
		t.Fatalf("anonymous /applications: %d %q, want 303 /connexion", r.status, r.header.Get("Location"))
	}
	r := b.get("/connexion")
	mustContain(t, "login page", r.body, `<html lang="fr"`, "Bienvenue sur le Portail de la Gestion Publique",
		"ALERTE ESCROQUERIE", "Conditions d'utilisation du Portail", `href="/aide/guide-acces"`, `href="/aide/faq"`,
		`href="/aide/assistance"`, `href="/aide/en-ligne"`, `class="fr-skiplinks"`, `for="identifiant"`, `for="motdepasse"`)
	b.mustLogin()
	r = b.get("/applications")
	want := "Expiration de votre mot de passe le " + web.LongDate(f.clock.Now().AddDate(1, 0, 0))
	mustContain(t, "applications", r.body, "Liste des applications disponibles pour", "DENIS JOUFFRE", want,
		`href="/apa/depot"`, "Accéder au changement de mot de passe")
	if strings.Contains(r.body, "expire bientôt") {
		t.Fatal("applications warns about a password valid for a year")
	}
	for _, p := range []string{"/apa/depot", "/apa/retrait", "/apa/historique-depots", "/apa/historique-retraits", "/mot-de-passe"} {
		if r := b.get(p); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.status)
		}
	}
	r = b.post("/deconnexion", url.Values{"csrf": {b.csrf("/applications")}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/connexion") {
		t.Fatalf("logout: %d %q", r.status, r.header.Get("Location"))
	}
	if r := b.get("/applications"); r.status != http.StatusSeeOther {
		t.Fatalf("after logout /applications: %d, want 303", r.status)
	}
}

func TestPortalSessionCookie(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	r := b.login(login, f.password)
	var found bool
	for _, c := range strings.Split(strings.Join(r.header.Values("Set-Cookie"), "\n"), "\n") {
		if strings.HasPrefix(c, "pigp-session=") {
			found = true
			for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
				if !strings.Contains(c, attr) {
					t.Errorf("session cookie %q lacks %s", c, attr)
				}
			}
			if strings.Contains(c, "Secure") {
				t.Errorf("session cookie %q is Secure without TLS", c)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie in %v", r.header.Values("Set-Cookie"))
	}
}

func TestPortalCSRFRefused(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	// Login without, or with a wrong, token.
	b.get("/connexion")
	for _, tok := range []string{"", "forged"} {
		r := b.post("/connexion", url.Values{"csrf": {tok}, "identifiant": {login}, "motdepasse": {f.password}})
		if r.status != http.StatusForbidden {
			t.Fatalf("login with token %q: %d, want 403", tok, r.status)
		}
		mustContain(t, "CSRF refusal", r.body, "La page a expiré ou la requête ne provient pas du portail")
	}
	b.mustLogin()
	// Logout, password change, upload and the strength endpoint.
	if r := b.post("/deconnexion", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without token: %d, want 403", r.status)
	}
	if r := b.post("/mot-de-passe", url.Values{"actuel": {f.password}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-42"}}); r.status != http.StatusForbidden {
		t.Fatalf("password change without token: %d, want 403", r.status)
	}
	if r := b.upload(callName(1), []byte("<x/>"), true, ""); r.status != http.StatusForbidden {
		t.Fatalf("upload without token: %d, want 403 (%s)", r.status, r.body)
	}
	if r := b.upload(callName(1), []byte("<x/>"), false, "forged"); r.status != http.StatusForbidden {
		t.Fatalf("upload with a forged token: %d, want 403", r.status)
	}
	req, _ := http.NewRequest("POST", f.base+"/mot-de-passe/niveau", strings.NewReader(`{"motdepasse":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if r := b.do(req); r.status != http.StatusForbidden {
		t.Fatalf("strength without token: %d, want 403", r.status)
	}
	// A token of another session is refused too.
	other := f.browser()
	other.mustLogin()
	if r := b.post("/deconnexion", url.Values{"csrf": {other.csrf("/applications")}}); r.status != http.StatusForbidden {
		t.Fatalf("logout with another session's token: %d, want 403", r.status)
	}
	// A cross-site form post is refused before the token is looked at.
	req, _ = http.NewRequest("POST", f.base+"/deconnexion", strings.NewReader("csrf="+b.csrf("/applications")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := b.do(req); r.status != http.StatusForbidden {
		t.Fatalf("cross-site post: %d, want 403", r.status)
	}
	if n, _ := f.db.CountDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siret}}); n != 0 {
		t.Fatalf("%d deposits recorded by refused requests", n)
	}
}

func TestPortalSessionExpiry(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	b.mustLogin()
	f.clock.Add(14 * time.Minute)
	if r := b.get("/apa/retrait"); r.status != http.StatusOK {
		t.Fatalf("after 14 min: %d, want 200", r.status)
	}
	f.clock.Add(14 * time.Minute) // active 14 min ago: still alive
	if r := b.get("/apa/depot"); r.status != http.StatusOK {
		t.Fatalf("14 min after the last request: %d, want 200", r.status)
	}
	f.clock.Add(15*time.Minute + time.Second)
	r := b.get("/apa/depot")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/connexion?session=expiree" {
		t.Fatalf("after 15 min idle: %d %q, want 303 /connexion?session=expiree", r.status, r.header.Get("Location"))
	}
	r = b.get("/connexion?session=expiree")
	mustContain(t, "login page", r.body, "Votre session a expiré après 15 minutes d'inactivité")
	// The expired session cannot be revived.
	f.clock.Add(-time.Hour)
	if r := b.get("/apa/depot"); r.status != http.StatusSeeOther {
		t.Fatalf("expired session reused: %d", r.status)
	}
	// Scripts get a 401 with a French message.
	b.mustLogin()
	f.clock.Add(16 * time.Minute)
	req, _ := http.NewRequest("POST", f.base+"/mot-de-passe/niveau", strings.NewReader(`{}`))
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if r := b.do(req); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "session a expiré") {
		t.Fatalf("script after expiry: %d %s", r.status, r.body)
	}
}

func TestPortalLoginThrottleAndNoEnumeration(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	message := regexp.MustCompile(`fr-alert--error[^>]*><p>([^<]*)</p>`)
	attempt := func(user, pw string) (int, string) {
		r := b.login(user, pw)
		m := message.FindStringSubmatch(r.body)
		if m == nil {
			return r.status, ""
		}
		return r.status, m[1]
	}
	// A wrong password and an unknown login look the same.
	s1, m1 := attempt(login, "wrong-Password-1")
	s2, m2 := attempt("nobody-xt", "wrong-Password-1")
	if s1 != http.StatusUnauthorized || s1 != s2 || m1 != m2 || m1 == "" {
		t.Fatalf("wrong password: %d %q; unknown login: %d %q; want the same 401", s1, m1, s2, m2)
	}
	// The third failure for the login, then a block even with the right password.
	attempt(login, "wrong-Password-2")
	attempt(login, "wrong-Password-3")
	attempt(login, "wrong-Password-4") // 3 failures are free; the 4th blocks for 2 s
	s, m := attempt(login, f.password)
	if s != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(m), "Trop de tentatives") {
		t.Fatalf("after 4 failures: %d %q, want 429", s, m)
	}
	// Unknown logins are throttled the same way.
	attempt("nobody-xt", "x1")
	attempt("nobody-xt", "x2")
	attempt("nobody-xt", "x3")
	if s2, m2 := attempt("nobody-xt", "x4"); s2 != s || !strings.Contains(html.UnescapeString(m2), "Trop de tentatives") {
		t.Fatalf("unknown login after failures: %d %q, want %d", s2, m2, s)
	}
	// The delay grows with each failure, and ends.
	f.clock.Add(3 * time.Second)
	attempt(login, "wrong-Password-5") // one more failure: 4 s
	f.clock.Add(3 * time.Second)
	if s, _ := attempt(login, f.password); s != http.StatusTooManyRequests {
		t.Fatalf("3 s into a 4 s block: %d, want 429", s)
	}
	f.clock.Add(2 * time.Second)
	if r := b.login(login, f.password); r.status != http.StatusSeeOther {
		t.Fatalf("after the delay: %d, want 303", r.status)
	}
	// Many failures from one address block the address for every login.
	c := f.browser()
	for i := range 12 {
		c.login(fmt.Sprintf("user%d-xt", i), "bad")
	}
	if r := c.login(login, f.password); r.status != http.StatusTooManyRequests {
		t.Fatalf("address after 12 failures: %d, want 429", r.status)
	}
}

func TestPortalUploadStreamedAndDownloadRecorded(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	b.mustLogin()
	token := b.csrf("/apa/depot")
	content := bytes.Repeat([]byte("<appel/>\n"), 100_000) // 900 KB: several chunks
	name := callName(1)
	r := b.upload(name, content, true, token)
	var rep struct {
		OK      bool   `json:"ok"`
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil || r.status != 200 || !rep.OK || !pigp.IsID(rep.ID) {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	mustContain(t, "confirmation", rep.Message, "a bien été déposé", "Identifiant du dépôt : "+rep.ID)
	ds, _ := f.db.ListDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siret}})
	if len(ds) != 1 || ds[0].ID != rep.ID || ds[0].Size != int64(len(content)) || ds[0].Protocol != pigp.ProtocolHTTP ||
		ds[0].ClientIP != "127.0.0.1" || ds[0].Login != login {
		t.Fatalf("deposits = %+v", ds)
	}
	// The plain form (no script) shows the confirmation in the page.
	r = b.upload(callName(2), []byte("<appel/>"), false, token)
	mustContain(t, "no-JS upload", r.body, "Dépôt enregistré", "Identifiant du dépôt")
	// Same checks and messages as SFTP.
	r = b.upload("mauvais-nom.txt", []byte("x"), true, token)
	_, wantErr := f.ex.CheckDepositName(&pigp.Caller{Login: login, SIRETs: []string{siret}}, "mauvais-nom.txt")
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, jsonText(pigp.ErrorMessage(wantErr))) {
		t.Fatalf("bad name: %d %s, want 400 %q", r.status, r.body, pigp.ErrorMessage(wantErr))
	}
	other := apa.CallName{Campaign: time.Now().Year(), SIRET: "22750001100019", Timestamp: time.Now().In(apa.Paris).Add(-time.Hour).Truncate(time.Second)}.String()
	if r = b.upload(other, []byte("x"), true, token); r.status != http.StatusForbidden || !strings.Contains(r.body, "n'est pas habilité") {
		t.Fatalf("other SIRET: %d %s", r.status, r.body)
	}
	// History shows the deposits with their status.
	r = b.get("/apa/historique-depots")
	mustContain(t, "history", r.body, name, name+"."+siret, rep.ID, "Reçu", "Nom externe fichier", "Nom interne fichier",
		"Date de dépôt", "Taille", "Identifiant du dépôt", "879 Ko")

	// A response: listed, downloaded through the exchange, recorded.
	resp, err := f.ex.Publish(context.Background(), siret, "2026_"+siret+"_20261128101500_REP.xml", pigp.DocResponse, rep.ID,
		strings.NewReader(strings.Repeat("r", 529)))
	if err != nil {
		t.Fatal(err)
	}
	r = b.get("/apa/retrait")
	mustContain(t, "retrait", r.body, "Les fichiers sont disponibles pendant 21 jours maximum, au delà ils sont supprimés du serveur",
		"Fichier réponse APA", resp.Name, "529 o", web.ShortDate(resp.AvailableAt), web.ShortDate(resp.ExpiresAt))
	dl := b.get("/apa/retrait/" + resp.Name)
	if dl.status != 200 || dl.body != strings.Repeat("r", 529) || !strings.Contains(dl.header.Get("Content-Disposition"), resp.Name) {
		t.Fatalf("download: %d %q %v", dl.status, dl.body, dl.header)
	}
	downloads, _ := f.db.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: []string{siret}})
	if len(downloads) != 1 || downloads[0].Protocol != pigp.ProtocolHTTP || downloads[0].ClientIP != "127.0.0.1" || downloads[0].Login != login {
		t.Fatalf("downloads = %+v", downloads)
	}
	r = b.get("/apa/retrait")
	if !regexp.MustCompile(`pigp-first-download">` + regexp.QuoteMeta(web.ShortDate(f.clock.Now())) + `<`).MatchString(r.body) {
		t.Fatalf("first download date not shown:\n%s", r.body)
	}
	mustContain(t, "download history", b.get("/apa/historique-retraits").body, resp.Name, "<span>HTTP</span>", login)
	// A partial (range) read records nothing more.
	req, _ := http.NewRequest("GET", f.base+"/apa/retrait/"+resp.Name, nil)
	req.Header.Set("Range", "bytes=0-9")
	if r := b.do(req); r.status != http.StatusPartialContent || len(r.body) != 10 {
		t.Fatalf("range: %d %d bytes", r.status, len(r.body))
	}
	if downloads, _ := f.db.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: []string{siret}}); len(downloads) != 1 {
		t.Fatalf("a partial read was recorded: %d downloads", len(downloads))
	}
	if r := b.get("/apa/retrait/absent.xml"); r.status != http.StatusNotFound {
		t.Fatalf("absent response: %d", r.status)
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func TestPortalOversizeUpload(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.ex.MaxUploadSize = 64 << 10
		f.srv.Config.MaxUploadSize = 64 << 10
	})
	b := f.browser()
	b.mustLogin()
	token := b.csrf("/apa/depot")
	for _, size := range []int{64<<10 + 1, 200 << 10, 2 << 20} {
		r := b.upload(callName(size%1000), make([]byte, size), true, token)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "taille maximale autorisée (64 Ko)") {
			t.Fatalf("%d bytes: %d %s, want 413", size, r.status, r.body)
		}
	}
	if r := b.upload(callName(1), make([]byte, 64<<10), true, token); r.status != 200 {
		t.Fatalf("exactly the limit: %d %s", r.status, r.body)
	}
	if n, _ := f.db.CountDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siret}}); n != 1 {
		t.Fatalf("%d deposits, want 1", n)
	}
	if tmp, _ := os.ReadDir(filepath.Join(f.blobs.Dir(), "tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestPortalHistoryPaging(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	caller := &pigp.Caller{AccountID: 1, Login: login, SIRETs: []string{siret}, RemoteIP: "127.0.0.1", Protocol: pigp.ProtocolSFTP}
	for i := range 45 {
		up, err := f.ex.BeginDeposit(ctx, caller, callName(i))
		if err != nil {
			t.Fatal(err)
		}
		up.WriteAt([]byte("<a/>"), 0)
		if _, err := up.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b := f.browser()
	b.mustLogin()
	rows := regexp.MustCompile(`<tr role="row">\s*<td role="cell" class="pigp-name-cell">`)
	r := b.get("/apa/historique-depots")
	if n := len(rows.FindAllString(r.body, -1)); n != 20 {
		t.Fatalf("page 1 has %d rows, want 20", n)
	}
	mustContain(t, "page 1", r.body, `href="/apa/historique-depots?page=2"`, `href="/apa/historique-depots?page=3"`, ">Suivant<", "45 dépôts")
	r = b.get("/apa/historique-depots?page=3")
	if n := len(rows.FindAllString(r.body, -1)); n != 5 {
		t.Fatalf("page 3 has %d rows, want 5", n)
	}
	if strings.Contains(r.body, ">Suivant<") || !strings.Contains(r.body, ">Précédent<") {
		t.Fatal("last page: want Précédent and no Suivant")
	}
	if r := b.get("/apa/historique-depots?page=99"); r.status != 200 {
		t.Fatalf("page beyond the end: %d", r.status)
	}
}

func TestPortalPasswordChangeAndStrength(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	b.mustLogin()
	token := b.csrf("/mot-de-passe")
	strength := func(pw string) map[string]any {
		req, _ := http.NewRequest("POST", f.base+"/mot-de-passe/niveau", strings.NewReader(`{"motdepasse":`+fmt.Sprintf("%q", pw)+`}`))
		req.Header.Set("X-CSRF-Token", token)
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
		r := b.do(req)
		var m map[string]any
		if err := json.Unmarshal([]byte(r.body), &m); err != nil || r.status != 200 {
			t.Fatalf("strength %q: %d %s", pw, r.status, r.body)
		}
		return m
	}
	if m := strength("soleil2024"); m["accepte"] != false || m["score"].(float64) > 2 {
		t.Fatalf("weak password: %v", m)
	}
	if m := strength("Mademoiselle1"); m["accepte"] != false || !strings.Contains(m["message"].(string), "trop facile à deviner") {
		t.Fatalf("French words: %v", m)
	}
	if m := strength("Velo-Rouge-Pluie-42"); m["accepte"] != true || m["niveau"] != "très fort" {
		t.Fatalf("strong password: %v", m)
	}
	r := b.post("/mot-de-passe", url.Values{"csrf": {token}, "actuel": {f.password}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-43"}})
	mustContain(t, "mismatch", r.body, "La confirmation ne correspond pas")
	r = b.post("/mot-de-passe", url.Values{"csrf": {token}, "actuel": {f.password}, "nouveau": {"Mademoiselle1"}, "confirmation": {"Mademoiselle1"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "trop facile à deviner") {
		t.Fatalf("weak new password: %d", r.status)
	}
	r = b.post("/mot-de-passe", url.Values{"csrf": {token}, "actuel": {"wrong"}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-42"}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Mot de passe actuel incorrect") {
		t.Fatalf("wrong current password: %d", r.status)
	}
	r = b.post("/mot-de-passe", url.Values{"csrf": {token}, "actuel": {f.password}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-42"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/applications" {
		t.Fatalf("change: %d %q", r.status, r.header.Get("Location"))
	}
	mustContain(t, "applications", b.get("/applications").body, "Votre mot de passe a été modifié")
	if r := f.browser().login(login, "Velo-Rouge-Pluie-42"); r.status != http.StatusSeeOther {
		t.Fatalf("login with the new password: %d", r.status)
	}
}

func TestPortalTemporaryAndExpiringPasswords(t *testing.T) {
	f := newFixture(t, nil)
	tmp := f.addAccount("provisoire-xt", true, f.clock.Now().AddDate(1, 0, 0))
	soon := f.addAccount("bientot-xt", false, f.clock.Now().Add(5*24*time.Hour))
	warn := f.addAccount("avertir-xt", false, f.clock.Now().Add(20*24*time.Hour))

	b := f.browser()
	if r := b.login("provisoire-xt", tmp); r.header.Get("Location") != "/mot-de-passe" {
		t.Fatalf("temporary password: redirected to %q", r.header.Get("Location"))
	}
	if r := b.get("/apa/depot"); r.header.Get("Location") != "/mot-de-passe" {
		t.Fatalf("temporary password: /apa/depot gives %d %q, want the change page", r.status, r.header.Get("Location"))
	}
	mustContain(t, "change page", b.get("/mot-de-passe").body, "Votre mot de passe est provisoire")

	b = f.browser()
	if r := b.login("bientot-xt", soon); r.header.Get("Location") != "/mot-de-passe" {
		t.Fatalf("password expiring in 5 days: redirected to %q", r.header.Get("Location"))
	}
	if r := b.get("/apa/depot"); r.status != 200 {
		t.Fatalf("expiring password: /apa/depot %d, want 200 (not forced)", r.status)
	}
	b = f.browser()
	if r := b.login("avertir-xt", warn); r.header.Get("Location") != "/applications" {
		t.Fatalf("password expiring in 20 days: %q", r.header.Get("Location"))
	}
	days := pigp.DaysUntil(f.clock.Now(), f.clock.Now().Add(20*24*time.Hour)) // 20, or 21 across a DST change at night
	mustContain(t, "applications", b.get("/applications").body, "Votre mot de passe expire bientôt", fmt.Sprintf("expire dans %d jours", days))

	// An expired password says so, once proved.
	f.clock.Add(400 * 24 * time.Hour)
	r := f.browser().login(login, f.password)
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "Votre mot de passe a expiré") {
		t.Fatalf("expired password: %d", r.status)
	}
}

func TestPortalSecurityHeadersAndHealth(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	r := b.get("/connexion")
	for k, v := range map[string]string{
		"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "same-origin",
	} {
		if !strings.Contains(r.header.Get(k), v) {
			t.Errorf("%s = %q, want %q", k, r.header.Get(k), v)
		}
	}
	if !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Error("CSP lacks frame-ancestors")
	}
	if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") || strings.Contains(r.body, "onclick") {
		t.Error("inline script or style in the page")
	}
	if r := b.get("/healthz"); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := b.get("/readyz"); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	f.db.Close()
	if r := b.get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without database: %d", r.status)
	}
	for _, p := range []string{"/static/dsfr/dsfr.min.css", "/static/dsfr/dsfr.module.min.js", "/static/pigp.js", "/static/pigp.css",
		"/static/dsfr/fonts/Marianne-Regular.woff2", "/static/dsfr/icons/system/download-line.svg", "/favicon.ico"} {
		if r := b.get(p); r.status != 200 || len(r.body) == 0 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	r = b.get("/nulle-part")
	if r.status != 404 || !strings.Contains(html.UnescapeString(r.body), "La page demandée n'existe pas") {
		t.Fatalf("404: %d", r.status)
	}
}

func TestPortalHelpAndDocumentation(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.srv.Config.Docs = os.DirFS(filepath.Join("..", "docs")) })
	b := f.browser()
	for _, p := range []string{"guide-acces", "faq", "assistance", "en-ligne", "charte", "pgssi", "alerte-escroquerie",
		"accessibilite", "mentions-legales", "donnees-personnelles"} {
		r := b.get("/aide/" + p)
		if r.status != 200 || !strings.Contains(r.body, "<h1") {
			t.Errorf("/aide/%s: %d", p, r.status)
		}
	}
	r := b.get("/documentation")
	mustContain(t, "documentation", r.body, apa.SchemaRequest, apa.SchemaResponse, apa.SchemaReport)
	r = b.get("/documentation/schemas/" + apa.SchemaRequest)
	if r.status != 200 || !strings.Contains(r.body, "xs:schema") {
		t.Fatalf("schema download: %d", r.status)
	}
	if _, err := os.Stat(filepath.Join("..", "docs", "cahier-des-charges.md")); err == nil {
		r = b.get("/documentation/cahier-des-charges")
		if r.status != 200 || !strings.Contains(r.body, "<h3>1. Noms de fichiers</h3>") {
			t.Fatalf("cahier des charges page: %d", r.status)
		}
		if r := b.get("/documentation/cahier-des-charges.md"); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/markdown") {
			t.Fatalf("cahier des charges download: %d", r.status)
		}
	}
	if r := b.get("/documentation/schemas/..%2Fweb.go"); r.status != 404 {
		t.Fatalf("traversal: %d", r.status)
	}
}

func TestPortalMarkdownEscapes(t *testing.T) {
	got := string(web.Markdown("# Titre <b>\n\nUn `<code>` et **gras** [lien](javascript:alert(1)) [ok](https://x.fr)\n\n| a | b |\n|---|---|\n| <i> | 2 |\n\n- un\n- deux\n\n```\n<script>\n```\n"))
	for _, want := range []string{"<h2>Titre &lt;b&gt;</h2>", "<code>&lt;code&gt;</code>", "<strong>gras</strong>",
		`<a href="https://x.fr">ok</a>`, "<td>&lt;i&gt;</td>", "<li>un</li>", "&lt;script&gt;"} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `href="javascript`) || strings.Contains(got, "<script>") {
		t.Errorf("unsafe markdown output:\n%s", got)
	}
}

// TestPortalExpiryCalendarDays: the reminder on the applications page
// counts whole calendar days in Paris to the expiry date it shows beside
// it, around the first of a month and the daylight-saving changes.
func TestPortalExpiryCalendarDays(t *testing.T) {
	p := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, apa.Paris) }
	for _, tt := range []struct {
		now, expires time.Time
		want         []string
	}{
		// 19 days and 23 hours: the 1st of December is 20 calendar days away.
		{p(2027, 11, 11, 8, 0), p(2027, 12, 1, 7, 0), []string{"expire dans 20 jours, le 1er décembre 2027", "Expiration de votre mot de passe le 1er décembre 2027"}},
		{p(2027, 11, 1, 0, 1), p(2027, 11, 20, 23, 59), []string{"expire dans 19 jours, le 20 novembre 2027", "Expiration de votre mot de passe le 20 novembre 2027"}},
		// Across the end of summer time (31 October 2027), late at night.
		{p(2027, 10, 24, 23, 30), p(2027, 11, 1, 0, 10), []string{"expire dans 8 jours, le 1er novembre 2027"}},
		// Across the start of summer time (28 March 2027): a 23-hour day.
		{p(2027, 3, 27, 23, 30), p(2027, 4, 1, 0, 10), []string{"expire dans 5 jours, le 1er avril 2027"}},
		{p(2027, 3, 31, 23, 59), p(2027, 4, 1, 0, 10), []string{"expire demain, le 1er avril 2027"}},
		{p(2027, 4, 1, 0, 1), p(2027, 4, 1, 23, 10), []string{"expire aujourd'hui, le 1er avril 2027"}},
	} {
		f := newFixture(t, nil)
		f.clock.mu.Lock()
		f.clock.t = tt.now.UTC()
		f.clock.mu.Unlock()
		pw := f.addAccount("calendrier-xt", false, tt.expires)
		b := f.browser()
		b.login("calendrier-xt", pw)
		r := b.get("/applications")
		if r.status != 200 {
			t.Fatalf("now %s: /applications %d", tt.now, r.status)
		}
		mustContain(t, fmt.Sprintf("applications at %s", tt.now), r.body, tt.want...)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestPortalRecordsTheRequestScheme: deposits, downloads and logins are
// recorded as HTTP over plain HTTP and as HTTPS over TLS.
func TestPortalRecordsTheRequestScheme(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			var pool *x509.CertPool
			f := newFixture(t, func(f *fixture) {
				f.ex.Audit = f.db
				if scheme == "https" {
					f.srv.Config.TLSCertFile, f.srv.Config.TLSKeyFile, pool = selfSigned(t)
				}
			})
			f.base = scheme + "://" + f.srv.ListenAddr().String()
			b := f.browser()
			b.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			b.mustLogin()
			want := map[string]string{"http": pigp.ProtocolHTTP, "https": pigp.ProtocolHTTPS}[scheme]

			r := b.upload(callName(1), []byte("<DemandeAPA/>"), true, b.csrf("/apa/depot"))
			if r.status != 200 {
				t.Fatalf("upload: %d %s", r.status, r.body)
			}
			resp, err := f.ex.Publish(context.Background(), siret, "2026_"+siret+"_20261128101500_REP.xml", pigp.DocResponse, "", strings.NewReader("<ReponseAPA/>"))
			if err != nil {
				t.Fatal(err)
			}
			if r := b.get("/apa/retrait/" + resp.Name); r.status != 200 {
				t.Fatalf("download: %d", r.status)
			}
			ctx := context.Background()
			deps, _ := f.db.ListDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siret}})
			dls, _ := f.db.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siret}})
			if len(deps) != 1 || deps[0].Protocol != want || len(dls) != 1 || dls[0].Protocol != want {
				t.Fatalf("recorded deposits %+v, downloads %+v; want %s", deps, dls, want)
			}
			evs, err := f.db.ListAudit(ctx, pigp.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			logins := 0
			for _, e := range evs {
				if e.Action == pigp.AuditLogin {
					logins++
					if e.Protocol != want {
						t.Errorf("login recorded over %s, want %s", e.Protocol, want)
					}
				}
			}
			if logins == 0 {
				t.Fatal("no login in the audit trail")
			}
			mustContain(t, "download history", b.get("/apa/historique-retraits").body, "<span>"+want+"</span>")
		})
	}
}

// TestPortalStaticDirectories: the embedded assets are served, their
// directories are not listed (404, as any unknown page).
func TestPortalStaticDirectories(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	for _, p := range []string{"/static/", "/static/dsfr/", "/static/dsfr", "/static/dsfr/icons/", "/static/dsfr/icons/system",
		"/static/dsfr/fonts", "/static/absent.css"} {
		r := b.get(p)
		if r.status != http.StatusNotFound || strings.Contains(r.body, "<pre>") || strings.Contains(r.body, `href="dsfr/"`) {
			t.Errorf("GET %s: %d, want 404 without a listing\n%.300s", p, r.status, r.body)
		}
		if r.status == http.StatusNotFound {
			mustContain(t, p, r.body, "La page demandée n'existe pas.")
		}
	}
	for _, p := range []string{"/static/pigp.css", "/static/pigp.js", "/static/dsfr/dsfr.min.css", "/favicon.ico"} {
		if r := b.get(p); r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
}

// TestPortalHistoryFiles: depots.csv and retraits.csv of the caller's
// SIRETs, with the byte-order mark, for a logged-in agent only.
func TestPortalHistoryFiles(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	if r := b.get("/apa/historique/depots.csv"); r.status != http.StatusSeeOther {
		t.Fatalf("anonymous depots.csv: %d", r.status)
	}
	b.mustLogin()
	call := callName(1)
	if r := b.upload(call, []byte("<DemandeAPA/>"), true, b.csrf("/apa/depot")); r.status != 200 {
		t.Fatalf("upload: %d", r.status)
	}
	for name, header := range map[string]string{
		"depots.csv":   "nom_externe;nom_interne;date_depot;taille;identifiant_depot;statut;sha256\r\n",
		"retraits.csv": "nom_fichier;type_document;taille;date_telechargement;identifiant;protocole;adresse_ip\r\n",
	} {
		r := b.get("/apa/historique/" + name)
		if r.status != 200 || !strings.HasPrefix(r.body, "\ufeff"+header) || r.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
			!strings.Contains(r.header.Get("Content-Disposition"), name) {
			t.Fatalf("%s: %d %v %q", name, r.status, r.header, r.body)
		}
	}
	if r := b.get("/apa/historique/depots.csv"); !strings.Contains(r.body, call) {
		t.Fatalf("depots.csv lacks the deposit: %q", r.body)
	}
	if r := b.get("/apa/historique/autre.csv"); r.status != http.StatusNotFound {
		t.Fatalf("autre.csv: %d", r.status)
	}
	mustContain(t, "history page", b.get("/apa/historique-depots").body, `href="/apa/historique/depots.csv"`)
}

// directoryState is a directory that answers or not.
type directoryState struct {
	mu   sync.Mutex
	down bool
}

func (d *directoryState) Check(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return pigp.Errorf(pigp.EDIRECTORY, pigp.MsgDirectoryUnavailable)
	}
	return nil
}

func TestReadyzDirectoryDegraded(t *testing.T) {
	dir := &directoryState{}
	f := newFixture(t, func(f *fixture) { f.srv.Directory = dir })
	b := f.browser()
	if r := b.get("/readyz"); r.status != 200 || strings.TrimSpace(r.body) != "ready" {
		t.Fatalf("readyz: %d %q", r.status, r.body)
	}
	dir.mu.Lock()
	dir.down = true
	dir.mu.Unlock()
	if r := b.get("/readyz"); r.status != 200 || strings.TrimSpace(r.body) != "degraded: directory unavailable" {
		t.Fatalf("readyz with the directory down: %d %q; want 200 degraded", r.status, r.body)
	}
	f.db.Close()
	if r := b.get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without database: %d", r.status)
	}
}
