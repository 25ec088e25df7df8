package apa_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

var update = flag.Bool("update", false, "rewrite the golden example files in testdata/exemples")

const (
	exampleDepositID = "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c1e"
	exampleCallName  = "2026_22940028800010_20261128101500.xml"
)

// golden compares got with testdata/exemples/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "exemples", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the writer's output (go test ./apa -run %s -update):\n%s", path, t.Name(), got)
	}
}

// xmllintSchema checks doc against one of our XSDs when xmllint exists.
func xmllintSchema(t *testing.T, schema string, doc []byte) {
	t.Helper()
	bin := xmllint(t)
	path := filepath.Join(t.TempDir(), "doc.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, out := xmllintValid(t, bin, filepath.Join("xsd", schema), path); !ok {
		t.Errorf("xmllint: invalid against %s:\n%s", schema, out)
	}
}

func scratchFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "scratch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// exampleResults answers the example call file as a matching job would.
func exampleResults(t *testing.T) []apa.Result {
	t.Helper()
	var demandes []apa.Demande
	rep := validateString(t, readFile(t, "testdata/exemples/demande.xml"), func(d apa.Demande) error {
		demandes = append(demandes, d)
		return nil
	})
	if rep.Rejected() || len(demandes) != 4 {
		t.Fatalf("example: got rejected=%v with %d demandes", rep.Rejected(), len(demandes))
	}
	found := apa.Result{
		Reference: demandes[0].Reference,
		Status:    apa.StatusFound,
		Household: &apa.Household{
			Declarants: []apa.Declarant{
				{Rank: 1, BirthName: "MARTIN", FirstNames: "Jeanne Marie Thérèse", BirthDate: "1938-02-14"},
				{Rank: 2, BirthName: "LEFÈVRE", FirstNames: "Paul", BirthDate: "1936-09-03"},
			},
			Resources: []apa.Resource{
				{Category: apa.CategoryTSPR, Beneficiary: apa.BeneficiaryD1, Amount: 14820},
				{Category: apa.CategoryTSPR, Beneficiary: apa.BeneficiaryD2, Amount: 21350},
				{Category: apa.CategoryRCM, Beneficiary: apa.BeneficiaryHousehold, Amount: 412},
				{Category: apa.CategoryRCMPFL, Beneficiary: apa.BeneficiaryHousehold, Amount: 0},
				{Category: apa.CategoryRF, Beneficiary: apa.BeneficiaryHousehold, Amount: 3600},
			},
		},
	}
	notFound := apa.Result{Reference: demandes[1].Reference, Status: apa.StatusNotFound,
		Reason: &apa.Reason{Code: apa.CodeNoMatch, Label: "Aucun foyer ne correspond"}}
	ambiguous := apa.Result{Reference: demandes[2].Reference, Status: apa.StatusAmbiguous,
		Reason: &apa.Reason{Code: apa.CodeAmbiguous, Label: "Plusieurs foyers correspondent"}}
	return []apa.Result{found, notFound, ambiguous, apa.RejectedResult(demandes[3])}
}

func TestResponseWriter(t *testing.T) {
	scratch := scratchFile(t)
	w := apa.NewResponseWriter(scratch)
	for _, r := range exampleResults(t) {
		if err := w.WriteResult(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := w.Counts(), (apa.Counts{Demandes: 4, Found: 1, NotFound: 1, Ambiguous: 1, Rejected: 1}); got != want {
		t.Errorf("got counts %+v, want %+v", got, want)
	}
	var out bytes.Buffer
	n, err := w.Finish(&out, apa.ResponseHeader{
		Campaign:  2026,
		SIRET:     "22940028800010",
		CallName:  exampleCallName,
		DepositID: exampleDepositID,
		Produced:  time.Date(2026, 11, 28, 11, 30, 16, 0, time.UTC), // 12:30:16 in Paris
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(out.Len()) {
		t.Errorf("got %d bytes reported, %d written", n, out.Len())
	}
	if !bytes.Contains(out.Bytes(), []byte("<DateProduction>2026-11-28T12:30:16</DateProduction>")) {
		t.Error("DateProduction is not in Europe/Paris")
	}
	golden(t, "reponse.xml", out.Bytes())
	xmllintSchema(t, apa.SchemaResponse, out.Bytes())
}

func TestResponseWriterEscaping(t *testing.T) {
	w := apa.NewResponseWriter(scratchFile(t))
	r := apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{
		Declarants: []apa.Declarant{{Rank: 1, BirthName: "A&B <C> \"D\" 'E'", FirstNames: "x\x01y\xffz\r", BirthDate: "1938-00-00"}},
	}}
	if err := w.WriteResult(r); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := w.Finish(&out, apa.ResponseHeader{Campaign: 2026, SIRET: "22940028800010", CallName: exampleCallName, DepositID: exampleDepositID}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Declarant struct {
			Nom     string `xml:"NomNaissance"`
			Prenoms string `xml:"Prenoms"`
		} `xml:"Resultat>Foyer>Declarant"`
	}
	if err := xml.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("output is not well-formed: %v\n%s", err, out.Bytes())
	}
	if got, want := doc.Declarant.Nom, "A&B <C> \"D\" 'E'"; got != want {
		t.Errorf("got NomNaissance %q, want %q", got, want)
	}
	if got, want := doc.Declarant.Prenoms, "x\uFFFDy\uFFFDz\r"; got != want {
		t.Errorf("got Prenoms %q, want %q", got, want)
	}
	xmllintSchema(t, apa.SchemaResponse, out.Bytes())
}

func TestResponseWriterRefuses(t *testing.T) {
	household := &apa.Household{Declarants: []apa.Declarant{{Rank: 1, BirthName: "MARTIN", FirstNames: "Jeanne", BirthDate: "1938-02-14"}}}
	reason := &apa.Reason{Code: apa.CodeNoMatch, Label: "Aucun foyer ne correspond"}
	tests := []struct {
		name string
		r    apa.Result
	}{
		{"BadReference", apa.Result{Reference: "A B", Status: apa.StatusNotFound, Reason: reason}},
		{"UnknownStatus", apa.Result{Reference: "R1", Status: "PERDU", Reason: reason}},
		{"FoundWithoutFoyer", apa.Result{Reference: "R1", Status: apa.StatusFound}},
		{"NotFoundWithoutMotif", apa.Result{Reference: "R1", Status: apa.StatusNotFound}},
		{"NotFoundWithFoyer", apa.Result{Reference: "R1", Status: apa.StatusNotFound, Reason: reason, Household: household}},
		{"BadCode", apa.Result{Reference: "R1", Status: apa.StatusNotFound, Reason: &apa.Reason{Code: "X1", Label: "x"}}},
		{"EmptyLabel", apa.Result{Reference: "R1", Status: apa.StatusNotFound, Reason: &apa.Reason{Code: "N201"}}},
		{"NoDeclarant", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{}}},
		{"Rank3", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{Declarants: []apa.Declarant{{Rank: 3, BirthName: "A", FirstNames: "B", BirthDate: "1938-02-14"}}}}},
		{"BadBirthDate", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{Declarants: []apa.Declarant{{Rank: 1, BirthName: "A", FirstNames: "B", BirthDate: "14/02/1938"}}}}},
		{"BadCategory", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{Declarants: household.Declarants, Resources: []apa.Resource{{Category: "RFR", Beneficiary: "FOYER"}}}}},
		{"BadBeneficiary", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{Declarants: household.Declarants, Resources: []apa.Resource{{Category: "RF", Beneficiary: "D3"}}}}},
		{"NegativeAmount", apa.Result{Reference: "R1", Status: apa.StatusFound, Household: &apa.Household{Declarants: household.Declarants, Resources: []apa.Resource{{Category: "RF", Beneficiary: "FOYER", Amount: -1}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := apa.NewResponseWriter(scratchFile(t))
			if err := w.WriteResult(tt.r); pigp.ErrorCode(err) != pigp.EINVALID {
				t.Errorf("got error %v, want code %s", err, pigp.EINVALID)
			}
		})
	}
	t.Run("NoResult", func(t *testing.T) {
		w := apa.NewResponseWriter(scratchFile(t))
		_, err := w.Finish(&bytes.Buffer{}, apa.ResponseHeader{Campaign: 2026, SIRET: "22940028800010", CallName: exampleCallName, DepositID: exampleDepositID})
		if pigp.ErrorCode(err) != pigp.EINVALID {
			t.Errorf("got %v, want code %s", err, pigp.EINVALID)
		}
	})
	t.Run("BadHeader", func(t *testing.T) {
		w := apa.NewResponseWriter(scratchFile(t))
		if err := w.WriteResult(apa.Result{Reference: "R1", Status: apa.StatusNotFound, Reason: reason}); err != nil {
			t.Fatal(err)
		}
		_, err := w.Finish(&bytes.Buffer{}, apa.ResponseHeader{Campaign: 2026, SIRET: "22940028800010", CallName: "x.xml", DepositID: exampleDepositID})
		if pigp.ErrorCode(err) != pigp.EINVALID {
			t.Errorf("got %v, want code %s", err, pigp.EINVALID)
		}
	})
}

var exampleReportHeader = apa.ReportHeader{
	CallName:  exampleCallName,
	DepositID: exampleDepositID,
	SIRET:     "22940028800010",
	Deposited: time.Date(2026, 11, 28, 10, 17, 42, 0, apa.Paris),
	Processed: time.Date(2026, 11, 28, 10, 18, 5, 0, apa.Paris),
}

func TestWriteReport(t *testing.T) {
	rep := validateString(t, readFile(t, "testdata/exemples/demande-rejetee.xml"), nil)
	if !rep.Rejected() {
		t.Fatal("example not rejected")
	}
	var out bytes.Buffer
	if err := apa.WriteReport(&out, exampleReportHeader, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "compte-rendu.xml", out.Bytes())
	xmllintSchema(t, apa.SchemaReport, out.Bytes())
}

// TestWriteReportCorpus writes the report of every rejected corpus file and
// checks it against CompteRenduAPA.xsd.
func TestWriteReportCorpus(t *testing.T) {
	xmllint(t)
	for _, c := range readManifest(t) {
		rep, _ := validateCorpus(t, c)
		if !rep.Rejected() {
			continue
		}
		t.Run(c.File, func(t *testing.T) {
			var out bytes.Buffer
			if err := apa.WriteReport(&out, exampleReportHeader, rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "<NombreAnomalies>") {
				t.Fatal("no NombreAnomalies")
			}
			xmllintSchema(t, apa.SchemaReport, out.Bytes())
		})
	}
}

func TestWriteReportRefuses(t *testing.T) {
	if err := apa.WriteReport(&bytes.Buffer{}, exampleReportHeader, &apa.Report{}); pigp.ErrorCode(err) != pigp.EINVALID {
		t.Errorf("empty report: got %v, want code %s", err, pigp.EINVALID)
	}
	rep := validateString(t, readFile(t, "testdata/e010-vide.xml"), nil)
	h := exampleReportHeader
	h.DepositID = "not-an-id"
	if err := apa.WriteReport(&bytes.Buffer{}, h, rep); pigp.ErrorCode(err) != pigp.EINVALID {
		t.Errorf("bad deposit id: got %v, want code %s", err, pigp.EINVALID)
	}
}

func TestSchemas(t *testing.T) {
	for _, name := range []string{apa.SchemaRequest, apa.SchemaResponse, apa.SchemaReport} {
		got, err := apa.Schemas().Open(name)
		if err != nil {
			t.Errorf("Schemas: %v", err)
			continue
		}
		got.Close()
	}
}
