package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/fiscal"
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
	httpListen := fs.String("http-listen", "", "portal listen address (default :8080, env PIGP_HTTP_LISTEN; off disables it)")
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
	if *httpListen != "" {
		c.HTTPListen = *httpListen
	}
	if c.HTTPListen == "off" {
		c.HTTPListen = ""
	}
	c.ProcessingSchedule = "*/10 * * * * *" // answers within seconds in a demo
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
	now := a.Now()
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
	// A small synthetic reference set, and a call file about its people:
	// once deposited, it gets real answers.
	var ref bytes.Buffer
	if _, err := fiscal.Generate(&ref, fiscal.GenerateOptions{Count: 200, Seed: 1, IncomeYear: paris.Year() - 1}); err != nil {
		return err
	}
	data, err := fiscal.ReadCSV(&ref, nil)
	if err != nil {
		return err
	}
	if err := a.DB.ImportReferentiel(ctx, data.Persons, data.Resources); err != nil {
		return err
	}
	call := apa.CallName{Campaign: paris.Year(), SIRET: demoSIRET, Timestamp: paris.Truncate(time.Second)}
	callPath := filepath.Join(dir, call.String())
	var callFile bytes.Buffer
	if err := fiscal.GenerateCall(&callFile, data.Persons, fiscal.SampleAddresses,
		fiscal.CallOptions{Name: call, Count: 12, Seed: 1, UnknownPc: 15, Contact: "demo@example.fr"}); err != nil {
		return err
	}
	if err := os.WriteFile(callPath, callFile.Bytes(), 0o644); err != nil {
		return err
	}
	// A demo must start whatever else runs on the machine: a taken port
	// gives way to a free one, said on the banner.
	var notes []string
	if err := startOnFreePort(&a.Config.SFTPListen, a.StartSFTP, "SFTP", &notes); err != nil {
		return err
	}
	if err := startOnFreePort(&a.Config.HTTPListen, a.StartWeb, "portal", &notes); err != nil {
		return err
	}
	if err := a.StartScheduler(); err != nil {
		return err
	}
	portal := "(portail désactivé)"
	if a.Web != nil {
		portal = browserURL(a.Web.ListenAddr(), a.Web.TLS())
	}
	_, port, _ := net.SplitHostPort(a.SFTP.ListenAddr().String())
	batch := filepath.Join(dir, "demo.batch")
	if err := os.WriteFile(batch, []byte("ls -l /retrait\nget /historique/depots.csv\n"), 0o644); err != nil {
		return err
	}
	sshOpts := fmt.Sprintf("-P %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null", port)
	fmt.Fprintf(m.Stdout, `
pigp demo is running (data in %s).
%s
  identifiant  : %s
  mot de passe : %s
  SIRET        : %s

Connect with:
  sftp %s %s@127.0.0.1

then, for example:
  ls /retrait
  get /retrait/%s
  put %s /depot/
  (within 10 seconds the deposit is processed and its answer appears in /retrait)
  get /historique/depots.csv

In a script (sftp -b turns password prompts off unless BatchMode=no):
  sftp -o BatchMode=no -b %s %s %s@127.0.0.1
  SSHPASS='%s' sshpass -e sftp -o BatchMode=no -b %s %s %s@127.0.0.1

Portal: %s

Press Ctrl-C to stop.
`, dir, strings.Join(notes, ""), demoLogin, password, demoSIRET, sshOpts, demoLogin, respName, callPath,
		batch, sshOpts, demoLogin, password, batch, sshOpts, demoLogin, portal)
	<-ctx.Done()
	if *keep {
		fmt.Fprintf(m.Stdout, "\npigp demo stopped; its data is kept in %s.\n", dir)
	} else {
		fmt.Fprintf(m.Stdout, "\npigp demo stopped; removing its temporary data (%s).\n", dir)
	}
	return nil
}

// startOnFreePort runs start on *addr; when that port is taken, it runs it
// again on a free port of the same host and adds a note saying so. An
// empty address (the portal switched off) is left alone.
func startOnFreePort(addr *string, start func() error, what string, notes *[]string) error {
	err := start()
	if err == nil || *addr == "" || !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	host, _, serr := net.SplitHostPort(*addr)
	if serr != nil {
		return err
	}
	taken := *addr
	*addr = net.JoinHostPort(host, "0")
	if err := start(); err != nil {
		return err
	}
	*notes = append(*notes, fmt.Sprintf("\n  (%s: %s is taken, a free port is used instead)\n", what, taken))
	return nil
}

// browserURL returns a URL a browser opens for a listener: a wildcard
// address (":8080", "[::]:8080", "0.0.0.0:8080") becomes localhost.
func browserURL(addr net.Addr, tls bool) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
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
