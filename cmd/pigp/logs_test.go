package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/config"
)

// documentedLogFields reads the field table of docs/exploitation.md
// (« Journaux » section): the `field` names of each row's first cell.
func documentedLogFields(t *testing.T) map[string]bool {
	t.Helper()
	doc := repoFile(t, "docs/exploitation.md")
	start := strings.Index(doc, "<!-- log-fields -->")
	end := strings.Index(doc, "<!-- /log-fields -->")
	if start < 0 || end < start {
		t.Fatal("docs/exploitation.md has no <!-- log-fields --> table")
	}
	out := map[string]bool{}
	// The first cell of each row: one or more `field` names.
	for _, row := range regexp.MustCompile("(?m)^\\| ([^|]+) \\|").FindAllStringSubmatch(doc[start:end], -1) {
		for _, m := range regexp.MustCompile("`([a-z0-9_.]+)`").FindAllStringSubmatch(row[1], -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d documented log fields", len(out))
	}
	return out
}

// TestLogsFullRun runs the whole exchange with JSON logs at debug level —
// operator commands, failed and successful logins over SFTP and the
// portal, deposits accepted and refused, processing, downloads, a removal,
// a password change, a reset, the password expiry job with its e-mails —
// then checks that every line is one JSON object whose fields are all
// documented, and that no password, password hash, name or e-mail address
// appears anywhere.
func TestLogsFullRun(t *testing.T) {
	ctx := context.Background()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.SFTPListen, c.HTTPListen, c.MetricsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.LogFormat, c.LogLevel = "json", "debug"
	c.ShutdownTimeout = config.Duration(5 * time.Second)
	logs := &lockedBuffer{}
	a, err := openApp(ctx, c, newLogger(c, logs))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, start := range []func() error{a.StartMetrics, a.StartSFTP, a.StartWeb} {
		if err := start(); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		var out strings.Builder
		m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: logs, Getenv: func(k string) string {
			return map[string]string{"PIGP_DATA_DIR": c.DataDir, "PIGP_LOG_FORMAT": "json", "USER": "operateur"}[k]
		}}
		if code := m.Run(ctx, args); code != 0 {
			t.Fatalf("pigp %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
		}
		return out.String()
	}
	const (
		name     = "Denis Jouffre"
		email    = "denis.jouffre@cg94.example.fr"
		contact  = "service.apa@cg94.example.fr"
		pw1      = "Vq4!rTz9#LmP2x"
		pw2      = "Hb7$kWq3@ZsN8r"
		wrong    = "Mauvais-Mot-2-Passe!"
		benefNom = "LEFEBVRE-ROUSSEL"
		benefPre = "Apolline"
		street   = "12 rue des Glycines"
	)
	cli("", "org", "add", "--siret", siretA, "--name", "Département du Val-de-Marne")
	cli(pw1+"\n", "user", "add", "--login", "denis-xt", "--siret", siretA, "--name", name, "--email", email, "--password-stdin")
	acct, err := a.DB.FindAccountByLogin(ctx, "denis-xt")
	if err != nil {
		t.Fatal(err)
	}
	hashes := []string{acct.PasswordHash}
	sftpAddr := a.SFTP.ListenAddr().String()

	// SFTP: a failed login, then deposits.
	if _, err := ssh.Dial("tcp", sftpAddr, sshConfig("denis-xt", wrong)); err == nil {
		t.Fatal("wrong password accepted")
	}
	conn, err := ssh.Dial("tcp", sftpAddr, sshConfig("denis-xt", pw1))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	good := callName(siretA, 1)
	n, _ := apa.ParseCallName(good, time.Now())
	call := `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>` + good[:4] + `</Campagne>
    <SiretDeposant>` + siretA + `</SiretDeposant>
    <DateCreation>` + n.Timestamp.Format("2006-01-02T15:04:05") + `</DateCreation>
    <CourrielContact>` + contact + `</CourrielContact>
    <Emetteur><Nom>Jouffre</Nom><Prenom>Denis</Prenom></Emetteur>
    <NombreDemandes>1</NombreDemandes>
  </Entete>
  <Demande>
    <ReferenceDossier>D-1</ReferenceDossier>
    <Sexe>F</Sexe>
    <NomNaissance>` + benefNom + `</NomNaissance>
    <Prenoms>` + benefPre + `</Prenoms>
    <DateNaissance>1938-04-12</DateNaissance>
    <LieuNaissance><CodeCommune>94028</CodeCommune></LieuNaissance>
    <Adresse><Ligne1>` + street + `</Ligne1><CodePostal>94000</CodePostal><Commune>Créteil</Commune></Adresse>
  </Demande>
</DemandeAPA>
`
	for name, body := range map[string]string{good: call, callName(siretA, 2): "<DemandeAPA><Nom>" + benefNom + "</Nom>"} {
		f, err := sc.Create("/depot/" + name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(body))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Create("/depot/" + benefNom + ".xml"); err == nil {
		t.Fatal("a badly named deposit was accepted")
	}
	if s, err := a.Process.Run(ctx); err != nil || s.Processed+s.Rejected != 2 {
		t.Fatalf("processing: %+v %v", s, err)
	}
	if _, _, err := a.Life.SendNotifications(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	files, err := sc.ReadDir("/retrait")
	if err != nil || len(files) != 2 {
		t.Fatalf("/retrait: %d files, %v", len(files), err)
	}
	for _, fi := range files {
		f, err := sc.Open("/retrait/" + fi.Name())
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(f)
		f.Close()
	}
	if err := sc.Remove("/retrait/" + files[0].Name()); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	conn.Close()

	// The portal: a failed login, a login, a password change.
	p := newPortal(t, "http://"+a.Web.ListenAddr().String())
	form := url.Values{"csrf": {p.csrf("/connexion")}, "identifiant": {"denis-xt"}, "motdepasse": {wrong}}
	req, _ := http.NewRequest("POST", p.base+"/connexion", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _ := p.do(req); status == http.StatusSeeOther {
		t.Fatal("portal accepted a wrong password")
	}
	p.login("denis-xt", pw1)
	p.upload(benefNom+"_"+benefPre+".xml", []byte(call)) // refused by its name
	if n, _ := a.DB.CountDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA}}); n != 2 {
		t.Fatalf("%d deposits after a refused portal deposit, want 2", n)
	}
	form = url.Values{"csrf": {p.csrf("/mot-de-passe")}, "actuel": {pw1}, "nouveau": {pw2}, "confirmation": {pw2}}
	req, _ = http.NewRequest("POST", p.base+"/mot-de-passe", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p.do(req)
	acct, _ = a.DB.FindAccountByLogin(ctx, "denis-xt")
	if acct.PasswordHash == hashes[0] {
		t.Fatal("the portal did not change the password")
	}
	hashes = append(hashes, acct.PasswordHash)

	// Operators: a reset (temporary password), then the expiry job a year
	// and a half later (expiry, e-mails without an SMTP server).
	out := cli("", "user", "reset-password", "--login", "denis-xt")
	temp := regexp.MustCompile(`\S{12,}`).FindAllString(out, -1)
	acct, _ = a.DB.FindAccountByLogin(ctx, "denis-xt")
	hashes = append(hashes, acct.PasswordHash)
	cli("", "expire", "--at", time.Now().AddDate(1, 6, 0).UTC().Format(time.RFC3339))
	cli("", "user", "list")
	a.Close()

	text := logs.String()
	secrets := append([]string{pw1, pw2, wrong, name, "Jouffre", email, contact, benefNom, benefPre, street}, hashes...)
	for _, h := range hashes {
		// The salt and the key of the PHC string, each on its own.
		parts := strings.Split(h, "$")
		secrets = append(secrets, parts[len(parts)-2], parts[len(parts)-1])
	}
	for _, tp := range temp {
		if strings.ContainsAny(tp, "0123456789") && tp != "denis-xt" {
			secrets = append(secrets, tp)
		}
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("the logs contain %q", s)
		}
		if strings.Contains(strings.ToLower(text), strings.ToLower(s)) && len(s) > 5 {
			t.Errorf("the logs contain %q (other case)", s)
		}
	}
	// SSH algorithm names (aes128-gcm@openssh.com) look like addresses.
	for _, addr := range regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}`).FindAllString(text, -1) {
		if !strings.HasSuffix(addr, "@openssh.com") {
			t.Errorf("the logs contain an e-mail address: %s", addr)
		}
	}

	documented := documentedLogFields(t)
	undocumented := map[string]bool{}
	lines := 0
	scan := bufio.NewScanner(strings.NewReader(text))
	scan.Buffer(make([]byte, 1<<20), 1<<20)
	for scan.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(scan.Bytes(), &rec); err != nil {
			t.Fatalf("not one JSON object per line: %q", scan.Text())
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Fatalf("line without %q: %q", k, scan.Text())
			}
		}
		if ts, _ := rec["time"].(string); !strings.HasSuffix(ts, "Z") {
			t.Fatalf("time not in UTC: %q", scan.Text())
		}
		for k := range rec {
			if !documented[k] {
				undocumented[k] = true
			}
		}
	}
	if len(undocumented) > 0 {
		var ks []string
		for k := range undocumented {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		t.Errorf("log fields missing from the table of docs/exploitation.md: %v", ks)
	}
	if lines < 15 {
		t.Fatalf("only %d log lines: the run did not go through", lines)
	}
	t.Logf("%d log lines, %d documented fields", lines, len(documented))
}
