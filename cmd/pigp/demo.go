package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

type demoCommand struct{}

// Demo organisation and account.
const (
	demoSIRET = "22940028800010"
	demoOrg   = "Département du Val-de-Marne (démonstration)"
	demoLogin = "demo-xt"
)

func (demoCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("demo")
	listen := fs.String("sftp-listen", "", "SFTP listen address (default :2222, env PIGP_SFTP_LISTEN)")
	keep := fs.Bool("keep", false, "keep the temporary data directory on exit")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pigp-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	cf := configFlags{dataDir: dir, database: "sqlite://" + filepath.Join(dir, "pigp.db"), sftpListen: *listen}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	logger := newLogger(c, m.Stderr)
	a, err := openApp(ctx, c, logger)
	if err != nil {
		return err
	}
	defer a.Close()

	if err := a.DB.CreateOrganisation(ctx, &pigp.Organisation{SIRET: demoSIRET, Name: demoOrg}); err != nil {
		return err
	}
	password := pigp.GeneratePassword(16)
	hash, err := pigp.HashPassword(password)
	if err != nil {
		return err
	}
	now := a.DB.Now()
	acct := &pigp.Account{Login: demoLogin, Name: "Agent de démonstration", Email: "demo@example.fr",
		SIRETs: []string{demoSIRET}, PasswordHash: hash, PasswordSetAt: now,
		PasswordExpiresAt: pigp.PasswordExpiry(now, c.PasswordValidityMonths), State: pigp.AccountActive}
	if err := a.DB.CreateAccount(ctx, acct); err != nil {
		return err
	}
	paris := now.In(apa.Paris)
	respName := apa.ResponseName(paris.Year(), demoSIRET, paris.Add(-time.Hour))
	if _, err := a.Exchange.Publish(ctx, demoSIRET, respName, pigp.DocResponse, "", strings.NewReader(sampleResponse(paris))); err != nil {
		return err
	}
	callName := apa.CallName{Campaign: paris.Year(), SIRET: demoSIRET, Timestamp: paris.Truncate(time.Second)}.String()
	callPath := filepath.Join(dir, callName)
	if err := os.WriteFile(callPath, []byte(sampleCall(paris)), 0o644); err != nil {
		return err
	}
	if err := a.StartSFTP(); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(a.SFTP.ListenAddr().String())
	fmt.Fprintf(m.Stdout, `
pigp demo is running (data in %s).

  identifiant  : %s
  mot de passe : %s
  SIRET        : %s

Connect with:
  sftp -P %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null %s@127.0.0.1

then, for example:
  ls /retrait
  get /retrait/%s
  put %s /depot/
  get /historique/depots.csv

Press Ctrl-C to stop.
`, dir, demoLogin, password, demoSIRET, port, demoLogin, respName, callPath)
	<-ctx.Done()
	return nil
}

// sampleCall returns a small call file for the demo account.
func sampleCall(now time.Time) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>` + strconv.Itoa(now.Year()) + `</Campagne>
    <SiretDeposant>` + demoSIRET + `</SiretDeposant>
    <DateCreation>` + now.Format("2006-01-02T15:04:05") + `</DateCreation>
    <CourrielContact>demo@example.fr</CourrielContact>
    <Emetteur><Nom>Démonstration</Nom><Prenom>Agent</Prenom></Emetteur>
    <NombreDemandes>1</NombreDemandes>
  </Entete>
  <Demande>
    <ReferenceDossier>DOS-0001</ReferenceDossier>
    <Sexe>F</Sexe>
    <NomNaissance>Lefèvre</NomNaissance>
    <Prenoms>Jeanne Marie</Prenoms>
    <DateNaissance>1938-04-12</DateNaissance>
    <LieuNaissance><CodeCommune>94028</CodeCommune><Libelle>Créteil</Libelle></LieuNaissance>
    <Adresse><Ligne1>12 rue des Lilas</Ligne1><CodePostal>94000</CodePostal><Commune>Créteil</Commune></Adresse>
  </Demande>
</DemandeAPA>
`
}

// sampleResponse returns a small response so that /retrait is not empty.
func sampleResponse(now time.Time) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<ReponseAPA version="1.0">
  <Entete>
    <Campagne>` + strconv.Itoa(now.Year()) + `</Campagne>
    <AnneeRevenus>` + strconv.Itoa(now.Year()-1) + `</AnneeRevenus>
    <SiretDeposant>` + demoSIRET + `</SiretDeposant>
    <NomFichierDemande>` + apa.CallName{Campaign: now.Year(), SIRET: demoSIRET, Timestamp: now.Add(-2 * time.Hour).Truncate(time.Second)}.String() + `</NomFichierDemande>
    <IdentifiantDepot>` + pigp.NewID() + `</IdentifiantDepot>
    <DateProduction>` + now.Add(-time.Hour).Format("2006-01-02T15:04:05") + `</DateProduction>
    <NombreDemandes>1</NombreDemandes>
    <NombreTrouves>1</NombreTrouves>
    <NombreNonTrouves>0</NombreNonTrouves>
    <NombreAmbigus>0</NombreAmbigus>
    <NombreRejetes>0</NombreRejetes>
  </Entete>
  <Resultat>
    <ReferenceDossier>DOS-0001</ReferenceDossier>
    <Statut>TROUVE</Statut>
    <Foyer>
      <Declarant rang="1">
        <NomNaissance>LEFEVRE</NomNaissance>
        <Prenoms>JEANNE MARIE</Prenoms>
        <DateNaissance>1938-04-12</DateNaissance>
      </Declarant>
      <Ressource><Categorie>TSPR</Categorie><Beneficiaire>D1</Beneficiaire><Montant>18240</Montant></Ressource>
      <Ressource><Categorie>RCM</Categorie><Beneficiaire>FOYER</Beneficiaire><Montant>312</Montant></Ressource>
    </Foyer>
  </Resultat>
</ReponseAPA>
`
}
