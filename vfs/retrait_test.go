package vfs_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/sftptest"
	"github.com/pigp/pigp/internal/testutil"
)

// TestDownload: reading a whole response records a download (first
// download date kept by later ones, client address and protocol), shown
// in retraits.csv; a partial read records nothing.
func TestDownload(t *testing.T) {
	e := sftptest.New(t)
	ctx := context.Background()
	content := []byte("<ReponseAPA version=\"1.0\"/>\n")
	resp := e.Publish(siretA, "2026_"+siretA+"_20261128103016_REP.xml", content)
	c := e.Session(e.CallerA()).Client

	f, err := c.Open("/retrait/" + resp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if dls, _ := e.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}}); len(dls) != 0 {
		t.Fatalf("a partial read recorded %d downloads", len(dls))
	}

	if got := read(t, c, "/retrait/"+resp.Name); string(got) != string(content) {
		t.Fatalf("downloaded %q, want %q", got, content)
	}
	r, err := e.DB.FindResponse(ctx, resp.ID)
	if err != nil || r.FirstDownloadAt == nil || !r.FirstDownloadAt.Equal(sftptest.Start) {
		t.Fatalf("first download date: %+v, %v", r, err)
	}
	e.Clock.Add(time.Minute)
	read(t, c, "/retrait/"+resp.Name)
	if r, _ := e.DB.FindResponse(ctx, resp.ID); !r.FirstDownloadAt.Equal(sftptest.Start) {
		t.Fatalf("first download date changed by the second download: %v", r.FirstDownloadAt)
	}
	dls, err := e.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
	if err != nil || len(dls) != 2 || dls[0].ResponseName != resp.Name || dls[0].ClientIP != "192.0.2.10" ||
		dls[0].Protocol != pigp.ProtocolSFTP || dls[0].Login != "agent-a" {
		t.Fatalf("downloads = %+v, %v", dls, err)
	}
	e.Clock.Add(time.Minute) // past historyTTL
	csv := string(read(t, c, "/historique/retraits.csv"))
	if strings.Count(csv, resp.Name+";Fichier réponse APA;28;") != 2 {
		t.Fatalf("retraits.csv:\n%s", csv)
	}
}

// TestRemoveRetrait: a response cannot be removed before its first
// download (French refusal); after, it is hidden and its content deleted,
// its history kept.
func TestRemoveRetrait(t *testing.T) {
	e := sftptest.New(t)
	ctx := context.Background()
	resp := e.Publish(siretA, "reponse_REP.xml", []byte("<ReponseAPA/>"))
	c := e.Session(e.CallerA()).Client
	r := e.RawSession(e.CallerA()).Raw
	code, msg := r.Remove("/retrait/" + resp.Name)
	wantStatus(t, "remove before the download", code, msg, fxDenied, "…pas encore été téléchargé")
	if err := c.Remove("/retrait/" + resp.Name); err == nil {
		t.Fatal("remove before the download accepted")
	}
	read(t, c, "/retrait/"+resp.Name)
	if err := c.Remove("/retrait/" + resp.Name); err != nil {
		t.Fatalf("remove after the download: %v", err)
	}
	_, err := c.Stat("/retrait/" + resp.Name)
	notExist(t, "stat of a removed response", err)
	if infos, _ := c.ReadDir("/retrait"); len(infos) != 0 {
		t.Fatalf("/retrait lists %v", infos)
	}
	if e.ObjectExists(resp.StorageKey) {
		t.Fatal("the removed response's content is still stored")
	}
	if dls, _ := e.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}}); len(dls) != 1 {
		t.Fatalf("history after the remove: %d downloads", len(dls))
	}
	code, msg = r.Remove("/retrait/" + resp.Name)
	wantStatus(t, "second remove", code, msg, fxNoFile, "…introuvable")
	code, msg = r.Remove("/retrait")
	wantStatus(t, "remove /retrait", code, msg, fxDenied, msgDenied)
}

// TestReadAndCloseErrors: a response whose content cannot be read, and one
// whose download cannot be recorded at close, give the client the French
// generic message, never a server path or a Go error; the detail is
// logged.
func TestReadAndCloseErrors(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	broken := e.Publish(siretA, "casse_REP.xml", []byte("<ReponseAPA/>"))
	p := filepath.Join(e.Spool.Dir(), "objects", filepath.FromSlash(broken.StorageKey))
	// The content is cut short: the open works, reads fail (the object
	// ends before the size its row records).
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open("/retrait/" + broken.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Read(make([]byte, 100))
	if err == nil {
		t.Fatal("read of a broken response succeeded")
	}
	if code, msg := sftptest.Status(t, err); code != fxFailure || msg != msgGeneric {
		t.Fatalf("read: %d %q, want the generic message", code, msg)
	}
	f.Close()
	if !strings.Contains(e.Logs(), "content ends at 3 bytes") {
		t.Errorf("the cause is not logged:\n%s", e.Logs())
	}

	ok := e.Publish(siretA, "ok_REP.xml", []byte("<ReponseAPA>contenu</ReponseAPA>"))
	restore := testutil.FailAuditInserts(t, "sqlite", e.DSN, pigp.AuditDownload)
	f, err = c.Open("/retrait/" + ok.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(f); err != nil {
		t.Fatal(err)
	}
	err = f.Close()
	if err == nil {
		t.Fatal("close succeeded although the download could not be recorded")
	}
	if code, msg := sftptest.Status(t, err); code != fxFailure || msg != msgGeneric {
		t.Fatalf("close: %d %q, want the generic message", code, msg)
	}
	restore()
	if ds, _ := e.DB.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: []string{siretA}}); len(ds) != 0 {
		t.Fatalf("downloads recorded without their audit row: %d", len(ds))
	}
}

// TestRetraitOfAuditor: an auditeur lists nothing in /retrait and cannot
// read (a download would be recorded) or remove a response.
func TestRetraitOfAuditor(t *testing.T) {
	e := sftptest.New(t)
	resp := e.Publish(siretA, "reponse_REP.xml", []byte("<ReponseAPA/>"))
	auditor := e.CallerA()
	auditor.Source = pigp.SourceLDAP
	s := e.Session(auditor)
	if infos, err := s.Client.ReadDir("/retrait"); err != nil || len(infos) != 0 {
		t.Fatalf("auditeur's /retrait: %v, %v", infos, err)
	}
	r := e.RawSession(auditor).Raw
	_, code, msg := r.Open("/retrait/"+resp.Name, flagRead)
	wantStatus(t, "auditeur's download", code, msg, fxDenied, "…Profil auditeur")
	code, msg = r.Remove("/retrait/" + resp.Name)
	wantStatus(t, "auditeur's remove", code, msg, fxDenied, "…Profil auditeur")
	if _, err := s.Client.Open("/historique/depots.csv"); err != nil {
		t.Fatalf("auditeur's history: %v", err)
	}
}
