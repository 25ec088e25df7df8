package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/config"
)

// TestWebPortalCrossProtocol shows that SFTP and the portal are two views
// of the same exchange: what one deposits or downloads, the other lists.
func TestWebPortalCrossProtocol(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e, base := startWebEnv(t, kind)
			c, _ := e.dialSFTP("alice-xt", e.alice)
			p := newPortal(t, base)
			p.login("alice-xt", e.alice)

			// SFTP deposit → portal history.
			sftpName := callName(siretA, 1)
			f, err := c.Create("/depot/" + sftpName)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("<DemandeAPA/>"))
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			_, body := p.get("/apa/historique-depots")
			if d := e.deposits(siretA)[0]; !strings.Contains(body, sftpName) || !strings.Contains(body, d.ID) {
				t.Fatalf("deposit %s made over SFTP is not in the portal history", sftpName)
			}

			// Portal deposit → SFTP history and the same records.
			webName := callName(siretA, 2)
			content := randomBytes(1<<20 + 77)
			status, reply := p.upload(webName, content)
			var rep struct {
				OK bool   `json:"ok"`
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(reply), &rep); status != 200 || !rep.OK {
				t.Fatalf("portal upload: %d %s", status, reply)
			}
			d := e.deposits(siretA)[0]
			if d.ID != rep.ID || d.ExternalName != webName || d.Protocol != pigp.ProtocolHTTP || d.SHA256 != sha(content) ||
				d.ClientIP != "127.0.0.1" || d.Login != "alice-xt" {
				t.Fatalf("portal deposit = %+v", d)
			}
			csv := readSFTP(t, c, "/historique/depots.csv")
			if !strings.Contains(csv, webName) || !strings.Contains(csv, rep.ID) {
				t.Fatalf("depots.csv over SFTP lacks the portal deposit:\n%s", csv)
			}
			// Bob sees neither.
			pb := newPortal(t, base)
			pb.login("bob-xt", e.bob)
			if _, body := pb.get("/apa/historique-depots"); strings.Contains(body, webName) || strings.Contains(body, sftpName) {
				t.Fatal("bob sees alice's deposits")
			}

			// A response downloaded on the portal is recorded as over SFTP.
			r1 := e.publish(siretA, "2026_"+siretA+"_20261128101500_REP.xml", []byte(strings.Repeat("a", 2000)))
			status, got := p.get("/apa/retrait/" + r1.Name)
			if status != 200 || got != strings.Repeat("a", 2000) {
				t.Fatalf("portal download: %d (%d bytes)", status, len(got))
			}
			csv = readSFTP(t, c, "/historique/retraits.csv")
			if !strings.Contains(csv, r1.Name) || !strings.Contains(csv, pigp.ProtocolHTTP) {
				t.Fatalf("retraits.csv lacks the portal download:\n%s", csv)
			}
			// A response downloaded over SFTP shows its first-download date on the portal.
			r2 := e.publish(siretA, "2026_"+siretA+"_20261128111500_REP.xml", []byte("<ReponseAPA/>"))
			readSFTP(t, c, "/retrait/"+r2.Name)
			_, body = p.get("/apa/retrait")
			today := time.Now().In(apa.Paris).Format("02-01-2006")
			row := body[strings.Index(body, r2.Name):]
			row = row[:strings.Index(row, "</tr>")]
			if !strings.Contains(row, `pigp-first-download">`+today) {
				t.Fatalf("first download over SFTP not shown on the portal: %s", row)
			}
			_, body = p.get("/apa/historique-retraits")
			if !strings.Contains(body, r2.Name) || !strings.Contains(body, pigp.ProtocolSFTP) || !strings.Contains(body, r1.Name) {
				t.Fatal("portal download history lacks a download")
			}
			// The schemas are served.
			if status, body := p.get("/documentation/schemas/" + apa.SchemaRequest); status != 200 || !strings.Contains(body, "schema") {
				t.Fatalf("schema: %d", status)
			}
			if status, _ := p.get("/readyz"); status != 200 {
				t.Fatalf("readyz: %d", status)
			}
		})
	}
}

// readSFTP reads a whole file over SFTP.
func readSFTP(t *testing.T, c *sftp.Client, path string) string {
	t.Helper()
	f, err := c.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// TestWebPortalConfig checks that an empty address disables the portal and
// that running without TLS is logged as a warning.
func TestWebPortalConfig(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) { c.HTTPListen = "" })
	if err := e.app.StartWeb(); err != nil || e.app.Web != nil {
		t.Fatalf("StartWeb with no address: %v, %v", err, e.app.Web)
	}
	var logs strings.Builder
	e.app.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	e.app.Config.HTTPListen = "127.0.0.1:0"
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	defer e.app.CloseWeb(context.Background())
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "WITHOUT TLS") {
		t.Fatalf("no warning about TLS in %q", logs.String())
	}
	resp, err := http.Get("http://" + e.app.Web.ListenAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}
