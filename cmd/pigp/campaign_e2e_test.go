package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// validCall returns a well-formed call file for name with one request.
func validCall(name string) []byte {
	n, _ := apa.ParseCallName(name, time.Now())
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>` + fmt.Sprint(n.Campaign) + `</Campagne>
    <SiretDeposant>` + n.SIRET + `</SiretDeposant>
    <DateCreation>` + n.Timestamp.Format("2006-01-02T15:04:05") + `</DateCreation>
    <CourrielContact>apa@example.fr</CourrielContact>
    <Emetteur><Nom>Jouffre</Nom><Prenom>Denis</Prenom></Emetteur>
    <NombreDemandes>1</NombreDemandes>
  </Entete>
  <Demande>
    <ReferenceDossier>D-1</ReferenceDossier>
    <Sexe>F</Sexe>
    <NomNaissance>LEFEVRE</NomNaissance>
    <Prenoms>Jeanne</Prenoms>
    <DateNaissance>1938-04-12</DateNaissance>
    <LieuNaissance><CodeCommune>94028</CodeCommune></LieuNaissance>
    <Adresse><Ligne1>12 rue des Lilas</Ligne1><CodePostal>94000</CodePostal><Commune>Créteil</Commune></Adresse>
  </Demande>
</DemandeAPA>
`)
}

// TestCampaignWindowsE008: `pigp campaign set` closes a campaign; a call
// file deposited over SFTP then gets a rejection report with E008 from the
// running server's processing job; `pigp campaign remove` opens it again.
// A year of the configuration file cannot be changed from the command
// line, and `pigp process` applies the file's windows too.
func TestCampaignWindowsE008(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	c, _ := e.dialSFTP("alice-xt", e.alice)
	deposit := func(n int) *pigp.Deposit {
		t.Helper()
		name := callName(siretA, n)
		f, err := c.Create("/depot/" + name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(validCall(name))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return e.deposits(siretA)[0]
	}
	answer := func(d *pigp.Deposit) (*pigp.Response, string) {
		t.Helper()
		r, err := e.app.DB.ResponseForDeposit(ctx, d.ID)
		if err != nil {
			t.Fatalf("deposit %s: %v", d.ExternalName, err)
		}
		return r, readSFTP(t, c, "/retrait/"+r.Name)
	}

	if code, out := e.cli(t, "campaign", "list"); code != 0 || !strings.Contains(out, "toutes les campagnes sont ouvertes") {
		t.Fatalf("campaign list without windows: %d %s", code, out)
	}
	now := time.Now().In(apa.Paris)
	year := now.Add(-time.Hour).Year() // the campaign of callName's files
	opens, closes := now.AddDate(0, 0, -60).Format(time.DateOnly), now.AddDate(0, 0, -1).Format(time.DateOnly)
	code, out := e.cli(t, "campaign", "set", "--year", fmt.Sprint(year), "--opens", opens, "--closes", closes)
	if code != 0 || !strings.Contains(out, "close aujourd'hui") {
		t.Fatalf("campaign set: %d %s", code, out)
	}
	if code, out := e.cli(t, "campaign", "list"); code != 0 ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), fmt.Sprintf("%d %s %s base close", year, opens, closes)) {
		t.Fatalf("campaign list: %d %s", code, out)
	}

	d := deposit(1)
	if sum, err := e.app.Process.Run(ctx); err != nil || sum.Rejected != 1 {
		t.Fatalf("processing: %+v %v", sum, err)
	}
	r, doc := answer(d)
	if r.DocType != pigp.DocReport || !strings.Contains(doc, "<Code>E008</Code>") ||
		!strings.Contains(doc, fmt.Sprintf("Campagne %d fermée à la date du dépôt", year)) {
		t.Fatalf("closed campaign: %s\n%s", r.DocType, doc)
	}

	// Removed: every campaign is open again.
	if code, out := e.cli(t, "campaign", "remove", "--year", fmt.Sprint(year)); code != 0 {
		t.Fatalf("campaign remove: %d %s", code, out)
	}
	d = deposit(2)
	if sum, err := e.app.Process.Run(ctx); err != nil || sum.Processed != 1 {
		t.Fatalf("processing: %+v %v", sum, err)
	}
	if r, doc := answer(d); r.DocType != pigp.DocResponse {
		t.Fatalf("open campaign: %s\n%s", r.DocType, doc)
	}

	// The configuration file's windows: they win, and the command line
	// cannot change them.
	cfg := filepath.Join(t.TempDir(), "pigp.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("campaigns:\n  - {year: %d, opens: %s, closes: %s}\n", year, opens, closes)), 0o600)
	code, out = e.cli(t, "campaign", "set", "--config", cfg, "--year", fmt.Sprint(year), "--opens", opens, "--closes", "2099-12-31")
	if code != 1 || !strings.Contains(out, "fixée par le fichier de configuration") {
		t.Fatalf("campaign set over the file: %d %s", code, out)
	}
	if code, out := e.cli(t, "campaign", "list", "--config", cfg); code != 0 || !strings.Contains(out, "configuration") {
		t.Fatalf("campaign list with the file: %d %s", code, out)
	}
	d = deposit(3)
	if code, out := e.cli(t, "process", "--config", cfg); code != 0 {
		t.Fatalf("pigp process: %d %s", code, out)
	}
	if r, doc := answer(d); r.DocType != pigp.DocReport || !strings.Contains(doc, "<Code>E008</Code>") {
		t.Fatalf("closed by the file: %s\n%s", r.DocType, doc)
	}

	// Bad input is refused with a clear message.
	for _, args := range [][]string{
		{"--year", fmt.Sprint(year), "--opens", "2026-02-30", "--closes", "2026-12-31"},
		{"--year", fmt.Sprint(year), "--opens", "2026-06-01", "--closes", "2026-05-31"},
	} {
		if code, out := e.cli(t, append([]string{"campaign", "set"}, args...)...); code != 1 || !strings.Contains(out, "invalide") && !strings.Contains(out, "précède") {
			t.Fatalf("campaign set %v: %d %s", args, code, out)
		}
	}
	if code, _ := e.cli(t, "campaign", "set", "--year", "2026"); code != 2 {
		t.Fatalf("campaign set without days: exit %d, want 2", code)
	}
}
