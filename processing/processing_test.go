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
	"regexp"
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
	acct  *pigp.Account

	mu    sync.Mutex
	clock time.Time
}

// now returns the test clock.
func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

// advance moves the test clock.
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
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
	e := &env{db: db, blobs: blobs, clock: now, acct: acct}
	e.proc = &processing.Processor{Store: db, Blobs: blob.NewFS(blobs), Spool: blobs, Places: tab, Now: e.now,
		Retention: 21 * 24 * time.Hour, StaleAfter: 15 * time.Minute,
		Wait: func(_ context.Context, d time.Duration) error { e.advance(d); return nil }}
	return e
}

// deposit stores a call file as a received deposit.
func (e *env) deposit(t *testing.T, name string, content []byte) *pigp.Deposit {
	t.Helper()
	id := pigp.NewID()
	key := blob.Key(blob.KindDeposit, id)
	if _, err := e.blobs.Put(key, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	d := &pigp.Deposit{ID: id, ExternalName: name, InternalName: name + "." + siret, SIRET: siret, AccountID: e.acct.ID,
		Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Status: pigp.DepositReceived, ClientIP: "127.0.0.1",
		Protocol: pigp.ProtocolSFTP, DepositedAt: e.now(), StorageKey: key}
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
			name := callName(e.now())
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

			start := e.now()
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
				!r.ExpiresAt.Equal(r.AvailableAt.Add(21*24*time.Hour)) || r.AvailableAt.Before(start) || r.AvailableAt.After(e.now()) {
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
			list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now())
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
	name := callName(e.now())
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
	e.advance(time.Minute)
	if _, err := e.proc.ProcessNext(ctx); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("fresh claim taken over: %v", err)
	}
	// …then processed again, once.
	e.advance(20 * time.Minute)
	if _, err := e.proc.ProcessNext(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = e.db.FindDeposit(ctx, d.ID)
	if got.Status != pigp.DepositProcessed {
		t.Fatalf("status %s", got.Status)
	}
	if list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now()); len(list) != 1 {
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
	base := callName(e.now())
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
		r, err := e.db.ResponseForDeposit(ctx, id)
		if err != nil {
			t.Fatalf("deposit %s: %v", id, err)
		}
		checkAnswerTime(t, e, r)
	}
	if list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, e.now()); len(list) != 12 {
		t.Fatalf("%d answers, want 12", len(list))
	}
}

var answerTime = regexp.MustCompile(`<(DateProduction|DateTraitement)>([^<]+)</`)

// checkAnswerTime asserts that the time in an answer's name is the time
// written inside it (DateProduction or DateTraitement), and returns it.
func checkAnswerTime(t *testing.T, e *env, r *pigp.Response) time.Time {
	t.Helper()
	doc := readAnswer(t, e, r)
	m := answerTime.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s: no DateProduction nor DateTraitement:\n%s", r.Name, doc)
	}
	want := map[string]string{pigp.DocResponse: "DateProduction", pigp.DocReport: "DateTraitement"}[r.DocType]
	if string(m[1]) != want {
		t.Fatalf("%s (%s) carries %s, want %s", r.Name, r.DocType, m[1], want)
	}
	inside, err := time.ParseInLocation("2006-01-02T15:04:05", string(m[2]), apa.Paris)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSuffix(r.Name, "_REP.xml"), "_")
	named, err := time.ParseInLocation("20060102150405", parts[len(parts)-1], apa.Paris)
	if err != nil {
		t.Fatalf("name %s: %v", r.Name, err)
	}
	if !named.Equal(inside) {
		t.Fatalf("%s: name time %s, %s %s", r.Name, named.Format(time.TimeOnly), m[1], inside.Format(time.TimeOnly))
	}
	if inside.After(r.AvailableAt) {
		t.Fatalf("%s: produced at %s, after its availability %s", r.Name, inside, r.AvailableAt)
	}
	return inside
}

// TestProcessAnswerNameIsProductionTime processes a batch of 50 call files
// of one SIRET and campaign, responses and rejection reports mixed: every
// answer's name carries exactly the DateProduction / DateTraitement written
// inside it, and the 50 names are distinct.
func TestProcessAnswerNameIsProductionTime(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			ctx := context.Background()
			e.advance(437 * time.Millisecond) // not on a second boundary
			base := callName(e.now())
			var ds []*pigp.Deposit
			for i := 0; i < 50; i++ {
				n := apa.CallName{Campaign: 2026, SIRET: siret, Timestamp: base.Timestamp.Add(time.Duration(-i) * time.Second)}
				content := callFile(n, demande{"A", "F", "Lefèvre", "Jeanne", "1938-04-12", "94028", "", "94000", "Créteil"})
				if i%5 == 4 {
					content = []byte("<DemandeAPA>") // E001: a rejection report
				}
				ds = append(ds, e.deposit(t, n.String(), content))
			}
			start := e.now()
			sum, err := e.proc.Run(ctx)
			if err != nil || sum.Processed != 40 || sum.Rejected != 10 {
				t.Fatalf("summary %+v, %v", sum, err)
			}
			names := map[string]bool{}
			for _, d := range ds {
				r, err := e.db.ResponseForDeposit(ctx, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if names[r.Name] {
					t.Fatalf("two answers named %s", r.Name)
				}
				names[r.Name] = true
				if at := checkAnswerTime(t, e, r); at.Before(start.Truncate(time.Second)) {
					t.Fatalf("%s produced at %s, before processing began (%s)", r.Name, at, start)
				}
			}
		})
	}
}

// TestProcessCampaignWindows: with campaign windows in force, a call file
// deposited while its campaign is closed gets a rejection report with
// E008; inside its window it is answered; without any window every
// campaign is open.
func TestProcessCampaignWindows(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	var windows []pigp.Campaign
	e.proc.Campaigns = func(context.Context) ([]pigp.Campaign, error) { return windows, nil }
	window := func(year int, opens, closes string) pigp.Campaign {
		c, err := pigp.NewCampaign(year, opens, closes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	process := func() (*pigp.Response, []byte) {
		t.Helper()
		e.advance(time.Minute)
		n := callName(e.now())
		d := e.deposit(t, n.String(), callFile(n, demande{"A", "F", "Lefèvre", "Jeanne", "1938-04-12", "94028", "", "94000", "Créteil"}))
		if _, err := e.proc.ProcessNext(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := e.db.ResponseForDeposit(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r, readAnswer(t, e, r)
	}
	// The clock is 2026-11-28: the 2026 window closed at the end of 30 June.
	windows = []pigp.Campaign{window(2026, "2026-01-15", "2026-06-30"), window(2027, "2027-01-15", "2027-06-30")}
	r, doc := process()
	if r.DocType != pigp.DocReport || !bytes.Contains(doc, []byte("<Code>E008</Code>")) ||
		!bytes.Contains(doc, []byte("Campagne 2026 fermée")) {
		t.Fatalf("closed campaign: %s\n%s", r.DocType, doc)
	}
	xmllint(t, "CompteRenduAPA.xsd", doc)
	// A window that holds the deposit day, to its last day included.
	windows = []pigp.Campaign{window(2026, "2026-01-15", e.now().In(apa.Paris).Format(time.DateOnly))}
	if r, doc := process(); r.DocType != pigp.DocResponse {
		t.Fatalf("open campaign: %s\n%s", r.DocType, doc)
	}
	// Windows in force, none for 2026: the campaign is not open.
	windows = []pigp.Campaign{window(2027, "2027-01-15", "2027-12-31")}
	if r, doc := process(); r.DocType != pigp.DocReport || !bytes.Contains(doc, []byte("<Code>E008</Code>")) {
		t.Fatalf("campaign without a window among windows: %s\n%s", r.DocType, doc)
	}
	// No window at all: every campaign is open, as without the setting.
	windows = nil
	if r, doc := process(); r.DocType != pigp.DocResponse {
		t.Fatalf("no window: %s\n%s", r.DocType, doc)
	}
}
