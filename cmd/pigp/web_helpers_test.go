package main

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/config"
)

// startWebEnv starts pigp with its SFTP server and its portal on 127.0.0.1.
func startWebEnv(t *testing.T, kind string) (*env, string) {
	t.Helper()
	e := startEnv(t, kind, func(c *config.Config) { c.HTTPListen = "127.0.0.1:0" })
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	return e, "http://" + e.app.Web.ListenAddr().String()
}

// portal is a cookie-keeping HTTP client of the portal that does not
// follow redirects.
type portal struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newPortal(t *testing.T, base string) *portal {
	jar, _ := cookiejar.New(nil)
	return &portal{t: t, base: base, client: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (p *portal) do(req *http.Request) (int, string) {
	p.t.Helper()
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		// The text of the page: file names carry line-break opportunities.
		return resp.StatusCode, strings.ReplaceAll(string(b), "<wbr>", "")
	}
	return resp.StatusCode, string(b)
}

func (p *portal) get(path string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+path, nil)
	return p.do(req)
}

var portalCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *portal) csrf(path string) string {
	p.t.Helper()
	_, body := p.get(path)
	m := portalCSRF.FindStringSubmatch(body)
	if m == nil {
		p.t.Fatalf("no CSRF token in %s", path)
	}
	return m[1]
}

func (p *portal) login(login, password string) {
	p.t.Helper()
	form := url.Values{"csrf": {p.csrf("/connexion")}, "identifiant": {login}, "motdepasse": {password}}
	req, _ := http.NewRequest("POST", p.base+"/connexion", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, body := p.do(req); status != http.StatusSeeOther {
		p.t.Fatalf("portal login %s: %d\n%s", login, status, body)
	}
}

// upload deposits a file as the page's script does and returns the reply.
func (p *portal) upload(name string, content []byte) (int, string) {
	p.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf", p.csrf("/apa/depot"))
	fw, _ := mw.CreateFormFile("fichier", name)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", p.base+"/apa/depot", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	return p.do(req)
}
