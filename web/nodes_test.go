package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/web"
)

// node starts another portal on the fixture's database and exchange, as a
// second node behind a balancer (or the same node after a restart).
func (f *fixture) node(t *testing.T) (base string, srv *web.Server) {
	t.Helper()
	srv = &web.Server{
		Config:   web.Config{Addr: "127.0.0.1:0", Now: f.clock.Now, Schemas: apa.Schemas(), MaxUploadSize: f.ex.MaxUploadSize},
		Exchange: f.ex, History: f.db, DB: f.db, Sessions: f.db, Logger: slog.New(slog.DiscardHandler),
	}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	return "http://" + srv.ListenAddr().String(), srv
}

// on runs fn with b pointed at base (the cookie jar ignores ports, as a
// browser behind a balancer sends its cookie to whichever node answers).
func (b *browser) on(base string, fn func()) {
	old := b.f.base
	b.f.base = base
	defer func() { b.f.base = old }()
	fn()
}

func sessionCookie(t *testing.T, b *browser, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "pigp-session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestPortalSessionsAcrossNodes: a session opened on one node is served
// by another with the same cookie (flash message and CSRF secret
// included), survives a restart, and a logout or a password change on
// one node revokes it on every node.
func TestPortalSessionsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	a := f.base
	bBase, _ := f.node(t)
	tmp := f.addAccount("provisoire-xt", true, f.clock.Now().AddDate(1, 0, 0))

	// Login on A with a temporary password: B keeps it on the change page
	// and shows the flash message A set.
	br := f.browser()
	br.on(a, func() {
		if r := br.login("provisoire-xt", tmp); r.header.Get("Location") != "/mot-de-passe" {
			t.Fatalf("login on A: %d %q", r.status, r.header.Get("Location"))
		}
	})
	br.on(bBase, func() {
		if r := br.get("/apa/depot"); r.header.Get("Location") != "/mot-de-passe" {
			t.Fatalf("B with A's session of a temporary password: %d %q", r.status, r.header.Get("Location"))
		}
		mustContain(t, "change page on B", br.get("/mot-de-passe").body, "Votre mot de passe est provisoire")
	})

	// The normal account: login on A, pages and a CSRF-checked post on B
	// with a token of A's page.
	b := f.browser()
	b.on(a, b.mustLogin)
	token := b.csrf("/applications") // on A
	b.on(bBase, func() {
		if r := b.get("/applications"); r.status != http.StatusOK || !strings.Contains(r.body, "DENIS JOUFFRE") {
			t.Fatalf("B with A's cookie: %d", r.status)
		}
		req, _ := http.NewRequest("POST", bBase+"/mot-de-passe/niveau", strings.NewReader(`{"motdepasse":"x"}`))
		req.Header.Set("X-CSRF-Token", token)
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
		if r := b.do(req); r.status != http.StatusOK {
			t.Fatalf("B refuses A's CSRF token: %d %s", r.status, r.body)
		}
	})
	// The login form of B, posted to A (pre-session CSRF needs no node state).
	c := f.browser()
	var loginToken string
	c.on(bBase, func() { loginToken = c.csrf("/connexion") })
	c.on(a, func() {
		r := c.post("/connexion", url.Values{"csrf": {loginToken}, "identifiant": {login}, "motdepasse": {f.password}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/applications" {
			t.Fatalf("B's login form posted to A: %d %q", r.status, r.header.Get("Location"))
		}
	})

	// Only the token's hash is stored.
	cookie := sessionCookie(t, b, a)
	if _, err := f.db.FindSession(ctx, cookie); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("the raw token finds a session: %v", err)
	}
	if _, err := f.db.FindSession(ctx, pigp.SessionTokenHash(cookie)); err != nil {
		t.Fatalf("the token's hash finds no session: %v", err)
	}

	// A restart of A: the session goes on.
	f.srv.Close(ctx)
	a2, _ := f.node(t)
	b.on(a2, func() {
		if r := b.get("/apa/retrait"); r.status != http.StatusOK {
			t.Fatalf("after a restart: %d, want 200", r.status)
		}
	})

	// Logout on B ends both browsers' sessions on A.
	b.on(bBase, func() {
		if r := b.post("/deconnexion", url.Values{"csrf": {b.csrf("/applications")}}); r.status != http.StatusSeeOther {
			t.Fatalf("logout on B: %d", r.status)
		}
	})
	for _, br := range []*browser{b, c} {
		br.on(a2, func() {
			if r := br.get("/applications"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/connexion" {
				t.Fatalf("on A after logout on B: %d %q, want 303 /connexion", r.status, r.header.Get("Location"))
			}
		})
	}

	// A password change on A ends the other browser's session on B; the
	// browser that changed it continues in a new session.
	b.on(a2, b.mustLogin)
	c.on(bBase, c.mustLogin)
	old := sessionCookie(t, b, a2)
	b.on(a2, func() {
		tok := b.csrf("/mot-de-passe")
		r := b.post("/mot-de-passe", url.Values{"csrf": {tok}, "actuel": {f.password}, "nouveau": {"Velo-Rouge-Pluie-42"}, "confirmation": {"Velo-Rouge-Pluie-42"}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("password change: %d", r.status)
		}
	})
	if sessionCookie(t, b, a2) == old {
		t.Fatal("the session token was not renewed by the password change")
	}
	b.on(bBase, func() {
		mustContain(t, "applications on B", b.get("/applications").body, "Votre mot de passe a été modifié")
	})
	c.on(bBase, func() {
		if r := c.get("/applications"); r.status != http.StatusSeeOther {
			t.Fatalf("other browser after the password change: %d, want 303", r.status)
		}
	})
	if _, err := f.db.FindSession(ctx, pigp.SessionTokenHash(old)); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("the old session after the password change: %v", err)
	}
}

// TestPortalSessionLastSeenAndLifetime: the last request is recorded at
// most once a minute, and a session ends after its absolute lifetime
// however active.
func TestPortalSessionLastSeenAndLifetime(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	b := f.browser()
	b.mustLogin()
	hash := pigp.SessionTokenHash(sessionCookie(t, b, f.base))
	s0, err := f.db.FindSession(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.clock.Add(10 * time.Second)
		b.get("/applications")
	}
	if s, _ := f.db.FindSession(ctx, hash); !s.LastSeenAt.Equal(s0.LastSeenAt) {
		t.Fatalf("last seen rewritten within a minute: %v then %v", s0.LastSeenAt, s.LastSeenAt)
	}
	f.clock.Add(10 * time.Second) // a minute after login
	b.get("/applications")
	s1, _ := f.db.FindSession(ctx, hash)
	if s1.LastSeenAt.Sub(f.clock.Now()).Abs() > time.Microsecond || !s1.ExpiresAt.Equal(s1.LastSeenAt.Add(15*time.Minute)) {
		t.Fatalf("after a minute: last seen %v, expires %v; want now %v and 15 min later", s1.LastSeenAt, s1.ExpiresAt, f.clock.Now())
	}
	// Active every 10 minutes: alive until 8 hours after login, then over.
	for f.clock.Now().Sub(s0.CreatedAt) < 8*time.Hour-10*time.Minute {
		f.clock.Add(10 * time.Minute)
		if r := b.get("/apa/depot"); r.status != http.StatusOK {
			t.Fatalf("%v after login, active: %d", f.clock.Now().Sub(s0.CreatedAt), r.status)
		}
	}
	f.clock.Add(10 * time.Minute)
	if r := b.get("/apa/depot"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/connexion?session=expiree" {
		t.Fatalf("8 h after login: %d %q, want the session over", r.status, r.header.Get("Location"))
	}
	if _, err := f.db.FindSession(ctx, hash); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("expired session still stored: %v", err)
	}
}

// TestPortalTrustedProxies: forwarding headers are believed only from a
// trusted proxy, and then the right-most untrusted address is the client.
func TestPortalTrustedProxies(t *testing.T) {
	ctx := context.Background()
	lastLogin := func(f *fixture) *pigp.AuditEvent {
		t.Helper()
		events, err := f.db.ListAudit(ctx, pigp.AuditFilter{From: time.Now().AddDate(-2, 0, 0), To: time.Now().AddDate(2, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].Action == pigp.AuditLogin {
				return events[i]
			}
		}
		t.Fatal("no login in the audit trail")
		return nil
	}
	lastLoginIP := func(f *fixture) string { t.Helper(); return lastLogin(f).IP }
	loginWith := func(f *fixture, header http.Header) reply {
		b := f.browser()
		get, _ := http.NewRequest("GET", f.base+"/connexion", nil)
		for k, vs := range header {
			get.Header[k] = vs
		}
		m := csrfRE.FindStringSubmatch(b.do(get).body)
		if m == nil {
			t.Fatal("no CSRF token in the login page")
		}
		tok := m[1]
		req, _ := http.NewRequest("POST", f.base+"/connexion",
			strings.NewReader(url.Values{"csrf": {tok}, "identifiant": {login}, "motdepasse": {f.password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, vs := range header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		return b.do(req)
	}
	trust := func(cidrs ...string) func(f *fixture) {
		return func(f *fixture) {
			f.ex.Audit = f.db
			for _, c := range cidrs {
				f.srv.Config.TrustedProxies = append(f.srv.Config.TrustedProxies, netip.MustParsePrefix(c))
			}
		}
	}

	f := newFixture(t, trust("127.0.0.1/32", "10.0.0.0/8"))
	for _, c := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"none", nil, "127.0.0.1"},
		{"xff", http.Header{"X-Forwarded-For": {"198.51.100.23"}}, "198.51.100.23"},
		{"spoofed left part", http.Header{"X-Forwarded-For": {"203.0.113.66, 198.51.100.23"}}, "198.51.100.23"},
		{"trusted hops skipped", http.Header{"X-Forwarded-For": {"203.0.113.66, 198.51.100.24, 10.1.2.3"}}, "198.51.100.24"},
		{"several headers", http.Header{"X-Forwarded-For": {"203.0.113.66", "198.51.100.25, 10.9.9.9"}}, "198.51.100.25"},
		{"with a port", http.Header{"X-Forwarded-For": {"198.51.100.26:4711"}}, "198.51.100.26"},
		{"only trusted", http.Header{"X-Forwarded-For": {"10.0.0.7, 10.0.0.8"}}, "10.0.0.7"},
		{"garbage", http.Header{"X-Forwarded-For": {"198.51.100.27, n'importe quoi"}}, "127.0.0.1"},
		{"forwarded", http.Header{"Forwarded": {`for=203.0.113.66, for="[2001:db8::7]:4711";by=10.0.0.1`}}, "2001:db8::7"},
		{"forwarded obfuscated", http.Header{"Forwarded": {`for=198.51.100.28, for=_hidden`}}, "127.0.0.1"},
	} {
		if r := loginWith(f, c.header); r.status != http.StatusSeeOther {
			t.Fatalf("%s: login %d", c.name, r.status)
		}
		if got := lastLoginIP(f); got != c.want {
			t.Errorf("%s: recorded address %s, want %s", c.name, got, c.want)
		}
	}
	// X-Forwarded-Proto from a trusted proxy: the browser used HTTPS.
	r := loginWith(f, http.Header{"X-Forwarded-For": {"198.51.100.29"}, "X-Forwarded-Proto": {"https"}})
	cookies := strings.Join(r.header.Values("Set-Cookie"), "\n")
	if !strings.Contains(cookies, "__Host-pigp-session=") || !strings.Contains(cookies, "Secure") {
		t.Fatalf("behind a TLS proxy: cookies %q, want __Host- and Secure", cookies)
	}
	if r.header.Get("Strict-Transport-Security") == "" {
		t.Fatal("behind a TLS proxy: no HSTS header")
	}
	if e := lastLogin(f); e.IP != "198.51.100.29" || e.Protocol != pigp.ProtocolHTTPS {
		t.Fatalf("behind a TLS proxy: login recorded from %s over %s, want 198.51.100.29 over %s", e.IP, e.Protocol, pigp.ProtocolHTTPS)
	}

	// From an untrusted peer, the same headers are ignored.
	g := newFixture(t, trust("10.0.0.0/8"))
	r = loginWith(g, http.Header{"X-Forwarded-For": {"198.51.100.30"}, "Forwarded": {"for=198.51.100.31"}, "X-Forwarded-Proto": {"https"}})
	if e := lastLogin(g); e.IP != "127.0.0.1" || e.Protocol != pigp.ProtocolHTTP {
		t.Fatalf("untrusted peer: recorded %s over %s, want its own 127.0.0.1 over %s", e.IP, e.Protocol, pigp.ProtocolHTTP)
	}
	if cookies := strings.Join(r.header.Values("Set-Cookie"), "\n"); strings.Contains(cookies, "Secure") || strings.Contains(cookies, "__Host-") {
		t.Fatalf("untrusted X-Forwarded-Proto believed: %q", cookies)
	}
}

// TestReadyzDraining: once draining, /readyz answers 503 while pages are
// still served.
func TestReadyzDraining(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	if r := b.get("/readyz"); r.status != http.StatusOK {
		t.Fatalf("readyz: %d", r.status)
	}
	f.srv.Drain()
	if r := b.get("/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "draining") {
		t.Fatalf("readyz while draining: %d %q", r.status, r.body)
	}
	b.mustLogin()
}

// lowSpace is a content store below its minimum free space.
type lowSpace struct{}

func (lowSpace) SpaceStatus() (free, required uint64, ok bool, err error) {
	return 100, 1000, false, nil
}

// TestReadyzLowSpace: the content store below min_free_space makes the
// node not ready (503) with the reason, while logins still work; a drain
// and an unreachable database also answer 503.
func TestReadyzLowSpace(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.srv.Space = lowSpace{} })
	b := f.browser()
	r := b.get("/readyz")
	if r.status != http.StatusServiceUnavailable || !strings.HasPrefix(r.body, "not ready: ") || !strings.Contains(r.body, "below min_free_space (100 bytes free, 1000 required)") {
		t.Fatalf("readyz with little space: %d %q; want 503 not ready with the reason", r.status, r.body)
	}
	b.mustLogin()
	f.srv.Drain()
	if r := b.get("/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "draining") {
		t.Fatalf("readyz while draining: %d %q", r.status, r.body)
	}
	g := newFixture(t, func(f *fixture) { f.srv.Space = lowSpace{} })
	g.db.Close()
	if r := g.browser().get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without database: %d", r.status)
	}
}

// TestStaticCaching: an asset is cacheable for a day; a missing one (404),
// a directory and a page are not cacheable at all, so that a proxy or a
// browser never keeps a "not found" for a file a new version adds.
func TestStaticCaching(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	if r := b.get("/static/pigp.css"); r.status != http.StatusOK || r.header.Get("Cache-Control") != "public, max-age=86400" {
		t.Fatalf("asset: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	for _, p := range []string{"/static/absent.css", "/static/dsfr/", "/static/dsfr", "/static/dsfr/absent/"} {
		r := b.get(p)
		if r.status != http.StatusNotFound || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d, Cache-Control %q; want 404, no-store", p, r.status, r.header.Get("Cache-Control"))
		}
	}
}
