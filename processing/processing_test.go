package processing_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/fiscal"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/places"
	"github.com/pigp/pigp/processing"
	"github.com/pigp/pigp/store"
)

const siret = "22940028800010"

const reference = `foyer;rang;sexe;nom_naissance;nom_usage;prenoms;date_naissance;lieu_naissance;annee_revenus;tspr;bns;pvm;rcm;rcm_pfl;rf
F1;1;F;Lefèvre;Martin;Jeanne Marie;1938-04-12;94028;2025;18240;;;312;45;1200
F1;2;M;Martin;;Jean-Pierre;1935-01-02;99350;2025;21000;3000;;;;
F2;1;M;Dupont;;Louis;1940-05-06;75056;2025;15000;;;;;
F3;1;M;Dupont;;Louis;1940-05-06;75056;2025;16000;;;;;
`

type env struct {
	db    *store.DB
	blobs *blob.Store
	proc  *processing.Processor
	now   time.Time
	acct  *pigp.Account
}

func newEnv(t *testing.T, kind string) *env {
	t.Helper()
	ctx := context.Background()
	db, blobs := testutil.NewStore(t, kind)
	data, err := fiscal.ReadCSV(strings.NewReader(reference), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ImportReferentiel(ctx, data.Persons, data.Resources); err != nil {
		t.Fatal(err)
	}
	db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siret, Name: "Val-de-Marne"})
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	acct := &pigp.Account{Login: "agent-xt", Name: "Agent", Email: "a@example.fr", SIRETs: []string{siret},
		PasswordHash: "x", PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0), State: pigp.AccountActive}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	tab, err := places.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, blobs: blobs, now: now, acct: acct}
	e.proc = &processing.Processor{Store: db, Blobs: blobs, Places: tab, Now: func() time.Time { return e.now },
		Retention: 21 * 24 * time.Hour, StaleAfter: 15 * time.Minute}
	return e
}

// deposit stores a call file as a received deposit.
func (e *env) deposit(t *testing.T, name string, content []byte) *pigp.Deposit {
	t.Helper()
	id := pigp.NewID()
	key := "depots/" + id[:2] + "/" + id
	if _, err := e.blobs.Put(key, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	d := &pigp.Deposit{ID: id, ExternalName: name, InternalName: name + "." + siret, SIRET: siret, AccountID: e.acct.ID,
		Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Status: pigp.DepositReceived, ClientIP: "127.0.0.1",
		Protocol: pigp.ProtocolSFTP, DepositedAt: e.now, StorageKey: key}
	if err := e.db.CreateDeposit(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

type demande struct{ ref, sex, name, first, date, commune, country, cp, city string }

// callFile builds a DemandeAPA for the name's campaign, SIRET and time.
func callFile(name apa.CallName, ds ...demande) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>%d</Campagne>
    <SiretDeposant>%s</SiretDeposant>
    <DateCreation>%s</DateCreation>
    <CourrielContact>apa@val-de-marne.example.fr</CourrielContact>
    <Emetteur><Nom>Jouffre</Nom><Prenom>Denis</Prenom></Emetteur>
    <NombreDemandes>%d</NombreDemandes>
  </Entete>
`, name.Campaign, name.SIRET, name.Timestamp.Format("2006-01-02T15:04:05"), len(ds))
	for _, d := range ds {
		place := "<CodeCommune>" + d.commune + "</CodeCommune>"
		if d.country != "" {
			place = "<CodePays>" + d.country + "</CodePays>"
		}
		fmt.Fprintf(&b, `  <Demande>
    <ReferenceDossier>%s</ReferenceDossier>
    <Sexe>%s</Sexe>
    <NomNaissance>%s</NomNaissance>
    <Prenoms>%s</Prenoms>
    <DateNaissance>%s</DateNaissance>
    <LieuNaissance>%s</LieuNaissance>
    <Adresse><Ligne1>1 rue de la Paix</Ligne1><CodePostal>%s</CodePostal><Commune>%s</Commune></Adresse>
  </Demande>
`, d.ref, d.sex, d.name, d.first, d.date, place, d.cp, d.city)
	}
	b.WriteString("</DemandeAPA>\n")
	return []byte(b.String())
}

func callName(t time.Time) apa.CallName {
	p := t.In(apa.Paris).Add(-time.Hour).Truncate(time.Second)
	return apa.CallName{Campaign: 2026, SIRET: siret, Timestamp: p}
}

func readAnswer(t *testing.T, e *env, r *pigp.Response) []byte {
	t.Helper()
	f, err := e.blobs.Open(r.StorageKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != r.SHA256 || int64(len(b)) != r.Size {
		t.Fatal("stored answer does not match its recorded size and sha256")
	}
	return b
}

// xmllint validates doc against one of the project's XSDs when xmllint is
// installed (CI installs it).
func xmllint(t *testing.T, xsd string, doc []byte) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xmllint is required in CI")
		}
		t.Log("xmllint not installed: schema check skipped")
		return
	}
	f := filepath.Join(t.TempDir(), "doc.xml")
	os.WriteFile(f, doc, 0o600)
	out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", filepath.Join("..", "apa", "xsd", xsd), f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint %s: %v\n%s\n%s", xsd, err, out, doc)
	}
}

func TestProcess(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			ctx := context.Background()
			name := callName(e.now)
			good := e.deposit(t, name.String(), callFile(name,
				demande{"TROUVE-1", "F", "LEFEVRE", "Jeanne", "1938-04-00", "94028", "", "94000", "Créteil"},
				demande{"ABSENT-2", "F", "Inconnue", "Marie", "1938-04-12", "94028", "", "94000", "Créteil"},
				demande{"AMBIGU-3", "M", "Dupont", "Louis", "1940-05-06", "75056", "", "75012", "Paris"},
				demande{"R101-4", "M", "Dupont", "Louis", "1940-02-30", "75056", "", "75012", "Paris"},
				demande{"R102-5", "M", "Martin", "Jean-Pierre", "1935-01-02", "", "99999", "94000", "Créteil"},
				demande{"R103-6", "F", "Lefèvre", "Jeanne", "1938-04-12", "94028", "", "94000", "Vincennes"},
				demande{"TROUVE-7", "M", "Martin", "Jean-Pierre Paul", "1935-01-02", "", "99350", "94000", "Créteil"},
			))
			name2 := apa.CallName{Campaign: 2026, SIRET: siret, Timestamp: name.Timestamp.Add(time.Second)}
			bad := e.deposit(t, name2.String(), []byte("<DemandeAPA version=\"1.0\"><Entete></DemandeAPA>"))

			sum, err := e.proc.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Processed != 1 || sum.Rejected != 1 || sum.Failed != 0 {
				t.Fatalf("summary %+v", sum)
			}
			d, _ := e.db.FindDeposit(ctx, good.ID)
			if d.Status != pigp.DepositProcessed {
				t.Fatalf("good deposit status %s", d.Status)
			}
			r, err := e.db.ResponseForDeposit(ctx, good.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.DocType != pigp.DocResponse || !strings.HasSuffix(r.Name, "_REP.xml") || !strings.HasPrefix(r.Name, "2026_"+siret+"_") ||
				!r.ExpiresAt.Equal(e.now.Add(21*24*time.Hour)) {
				t.Fatalf("response %+v", r)
			}
			doc := readAnswer(t, e, r)
			xmllint(t, "ReponseAPA.xsd", doc)
			s := string(doc)
			for _, want := range []string{
				"<NombreDemandes>7</NombreDemandes>", "<NombreTrouves>2</NombreTrouves>", "<NombreNonTrouves>1</NombreNonTrouves>",
				"<NombreAmbigus>1</NombreAmbigus>", "<NombreRejetes>3</NombreRejetes>", "<AnneeRevenus>2025</AnneeRevenus>",
				"<IdentifiantDepot>" + good.ID + "</IdentifiantDepot>", "<NomFichierDemande>" + name.String() + "</NomFichierDemande>",
				"<Code>N201</Code>", "<Code>N202</Code>", "<Code>R101</Code>", "<Code>R102</Code>", "<Code>R103</Code>",
				"<Categorie>RCM_PFL</Categorie>", "<Beneficiaire>FOYER</Beneficiaire>",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("response lacks %s", want)
				}
			}
			// Results come in the order of the requests.
			last := -1
			for _, ref := range []string{"TROUVE-1", "ABSENT-2", "AMBIGU-3", "R101-4", "R102-5", "R103-6", "TROUVE-7"} {
				i := strings.Index(s, "<ReferenceDossier>"+ref+"</ReferenceDossier>")
				if i < last {
					t.Errorf("%s out of order", ref)
				}
				last = i
			}
			// Nothing the contract does not allow: no address, no NIR, no
			// revenu fiscal de référence, no parts.
			for _, banned := range []string{"Adresse", "rue de la Paix", "RevenuFiscal", "Parts", "Usage"} {
				if strings.Contains(s, banned) {
					t.Errorf("response contains %q", banned)
				}
			}

			db, _ := e.db.FindDeposit(ctx, bad.ID)
			if db.Status != pigp.DepositRejected {
				t.Fatalf("bad deposit status %s", db.Status)
			}
			rr, err := e.db.ResponseForDeposit(ctx, bad.ID)
			if err != nil {
				t.Fatal(err)
			}
			report := readAnswer(t, e, rr)
			xmllint(t, "CompteRenduAPA.xsd", report)
			if rr.DocType != pigp.DocReport || !strings.Contains(string(report), "<Code>E001</Code>") ||
				!strings.Contains(string(report), "<Resultat>REJETE</Resultat>") {
				t.Fatalf("report %+v:\n%s", rr, report)
			}
			if rr.Name == r.Name {
				t.Fatal("two answers share a name")
			}
			// Listed in /retrait for the SIRET.
			list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now)
			if len(list) != 2 {
				t.Fatalf("%d answers available, want 2", len(list))
			}
			// Nothing left to do.
			if _, err := e.proc.ProcessNext(ctx); pigp.ErrorCode(err) != pigp.ENOTFOUND {
				t.Fatalf("queue not empty: %v", err)
			}
		})
	}
}

// crashingStore fails FinishDeposit once, as if the process died after the
// answer's content was stored but before its row was committed.
type crashingStore struct {
	*store.DB
	mu      sync.Mutex
	crashes int
}

func (c *crashingStore) FinishDeposit(ctx context.Context, id, status string, r *pigp.Response, now time.Time, audit ...*pigp.AuditEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashes > 0 {
		c.crashes--
		return fmt.Errorf("simulated crash")
	}
	return c.DB.FinishDeposit(ctx, id, status, r, now, audit...)
}

func TestProcessCrashSafe(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	name := callName(e.now)
	d := e.deposit(t, name.String(), callFile(name, demande{"A", "F", "Lefèvre", "Jeanne", "1938-04-12", "94028", "", "94000", "Créteil"}))
	cs := &crashingStore{DB: e.db, crashes: 1}
	e.proc.Store = cs
	if _, err := e.proc.ProcessNext(ctx); err == nil {
		t.Fatal("simulated crash not reported")
	}
	got, _ := e.db.FindDeposit(ctx, d.ID)
	if got.Status != pigp.DepositProcessing {
		t.Fatalf("status after crash %s, want EN_COURS", got.Status)
	}
	if _, err := e.db.ResponseForDeposit(ctx, d.ID); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatal("a half-done answer is visible")
	}
	// Not taken over before the claim goes stale…
	e.now = e.now.Add(time.Minute)
	if _, err := e.proc.ProcessNext(ctx); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("fresh claim taken over: %v", err)
	}
	// …then processed again, once.
	e.now = e.now.Add(20 * time.Minute)
	if _, err := e.proc.ProcessNext(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = e.db.FindDeposit(ctx, d.ID)
	if got.Status != pigp.DepositProcessed {
		t.Fatalf("status %s", got.Status)
	}
	if list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now); len(list) != 1 {
		t.Fatalf("%d answers for one deposit", len(list))
	}
	// The content stored before the crash is not referenced: only one
	// answer object remains besides the deposit.
	n := 0
	filepath.Walk(filepath.Join(e.blobs.Dir(), "objects", "retraits"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d answer objects stored, want 1", n)
	}
}

func TestProcessConcurrent(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	base := callName(e.now)
	var ids []string
	for i := 0; i < 12; i++ {
		n := apa.CallName{Campaign: 2026, SIRET: siret, Timestamp: base.Timestamp.Add(time.Duration(i) * time.Second)}
		ids = append(ids, e.deposit(t, n.String(), callFile(n, demande{"A", "F", "Lefèvre", "Jeanne", "1938-04-12", "94028", "", "94000", "Créteil"})).ID)
	}
	var wg sync.WaitGroup
	sums := make([]processing.Summary, 4)
	for w := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := *e.proc
			sums[w], _ = p.Run(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for _, s := range sums {
		total += s.Processed
	}
	if total != 12 {
		t.Fatalf("processed %d deposits in all, want 12 (%+v)", total, sums)
	}
	for _, id := range ids {
		if _, err := e.db.ResponseForDeposit(ctx, id); err != nil {
			t.Fatalf("deposit %s: %v", id, err)
		}
	}
	if list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now); len(list) != 12 {
		t.Fatalf("%d answers, want 12", len(list))
	}
}
