package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/fiscal"
)

// TestProcessingOverSFTP deposits a valid and an invalid call file over
// SFTP, processes them, downloads both answers over SFTP and checks them
// against the project's XSDs.
func TestProcessingOverSFTP(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	data, err := fiscal.ReadCSV(strings.NewReader(`foyer;rang;sexe;nom_naissance;nom_usage;prenoms;date_naissance;lieu_naissance;annee_revenus;tspr;bns;pvm;rcm;rcm_pfl;rf
F1;1;F;Lefèvre;;Jeanne Marie;1938-04-12;94028;2025;18240;;;312;;
F1;2;M;Martin;;Paul;1936-02-03;94028;2025;20100;;;;;
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.DB.ImportReferentiel(ctx, data.Persons, data.Resources); err != nil {
		t.Fatal(err)
	}
	c, _ := e.dialSFTP("alice-xt", e.alice)
	goodName := callName(siretA, 40)
	n, _ := apa.ParseCallName(goodName, time.Now())
	good := `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>` + goodName[:4] + `</Campagne>
    <SiretDeposant>` + siretA + `</SiretDeposant>
    <DateCreation>` + n.Timestamp.Format("2006-01-02T15:04:05") + `</DateCreation>
    <CourrielContact>apa@example.fr</CourrielContact>
    <Emetteur><Nom>Jouffre</Nom><Prenom>Denis</Prenom></Emetteur>
    <NombreDemandes>2</NombreDemandes>
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
  <Demande>
    <ReferenceDossier>D-2</ReferenceDossier>
    <Sexe>M</Sexe>
    <NomNaissance>Inconnu</NomNaissance>
    <Prenoms>Paul</Prenoms>
    <DateNaissance>1936-02-03</DateNaissance>
    <LieuNaissance><CodeCommune>94028</CodeCommune></LieuNaissance>
    <Adresse><Ligne1>1 rue</Ligne1><CodePostal>94000</CodePostal><Commune>Créteil</Commune></Adresse>
  </Demande>
</DemandeAPA>
`
	badName := callName(siretA, 41)
	for name, body := range map[string]string{goodName: good, badName: "<DemandeAPA version=\"1.0\">"} {
		f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(body))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := e.app.Process.Run(ctx)
	if err != nil || sum.Processed != 1 || sum.Rejected != 1 {
		t.Fatalf("processing: %+v, %v", sum, err)
	}
	infos, err := c.ReadDir("/retrait")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var docs []string
	for _, fi := range infos {
		if !strings.HasSuffix(fi.Name(), "_REP.xml") {
			t.Fatalf("unexpected answer name %s", fi.Name())
		}
		f, err := c.Open("/retrait/" + fi.Name())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if int64(len(b)) != fi.Size() {
			t.Fatalf("%s: listed %d bytes, read %d", fi.Name(), fi.Size(), len(b))
		}
		p := filepath.Join(dir, fi.Name())
		os.WriteFile(p, b, 0o600)
		docs = append(docs, p)
	}
	if len(docs) != 2 {
		t.Fatalf("%d answers in /retrait, want 2", len(docs))
	}
	var response, report []byte
	for _, p := range docs {
		b, _ := os.ReadFile(p)
		switch {
		case bytes.Contains(b, []byte("<ReponseAPA")):
			response = b
			lint(t, "ReponseAPA.xsd", p)
		case bytes.Contains(b, []byte("<CompteRenduAPA")):
			report = b
			lint(t, "CompteRenduAPA.xsd", p)
		}
	}
	for _, want := range []string{"<NombreDemandes>2</NombreDemandes>", "<NombreTrouves>1</NombreTrouves>",
		"<NombreNonTrouves>1</NombreNonTrouves>", "<Statut>TROUVE</Statut>", "<Statut>NON_TROUVE</Statut>",
		"<NomFichierDemande>" + goodName + "</NomFichierDemande>"} {
		if !bytes.Contains(response, []byte(want)) {
			t.Errorf("response lacks %s:\n%s", want, response)
		}
	}
	if !bytes.Contains(report, []byte("<Resultat>REJETE</Resultat>")) || !bytes.Contains(report, []byte("<NomFichierDemande>"+badName)) {
		t.Errorf("report:\n%s", report)
	}
	// Statuses in the history, document types in the listing's history.
	for _, d := range e.deposits(siretA) {
		want := pigp.DepositProcessed
		if d.ExternalName == badName {
			want = pigp.DepositRejected
		}
		if d.Status != want {
			t.Errorf("%s: status %s, want %s", d.ExternalName, d.Status, want)
		}
	}
	h, _ := c.Open("/historique/retraits.csv")
	hb, _ := io.ReadAll(h)
	h.Close()
	if !bytes.Contains(hb, []byte(";Fichier réponse APA;")) || !bytes.Contains(hb, []byte(";Compte rendu de rejet APA;")) {
		t.Errorf("retraits.csv does not tell the document types apart:\n%s", hb)
	}
	// Both outcomes are in the audit trail, and the chain holds.
	events, err := e.app.DB.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, ev := range events {
		if ev.Action == pigp.AuditProcessing {
			outcomes[ev.Outcome]++
		}
	}
	if outcomes[pigp.AuditOK] != 1 || outcomes[pigp.AuditRefused] != 1 {
		t.Errorf("processing audit events %v, want one success and one refusal", outcomes)
	}
	if rep, err := e.app.DB.VerifyAudit(ctx); err != nil || !rep.OK() {
		t.Errorf("audit chain: %+v, %v", rep, err)
	}
	// /depot no longer lists processed deposits.
	if left, _ := c.ReadDir("/depot"); len(left) != 0 {
		t.Errorf("/depot still lists %d processed deposits", len(left))
	}
}

func lint(t *testing.T, xsd, file string) {
	t.Helper()
	needTool(t, "xmllint")
	out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", filepath.Join("..", "..", "apa", "xsd", xsd), file).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint %s: %v\n%s", file, err, out)
	}
}
