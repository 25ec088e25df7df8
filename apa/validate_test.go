package apa_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
)

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// validateString validates a call file under the default name with the
// corpus options.
func validateString(tb testing.TB, doc string, visit func(apa.Demande) error) *apa.Report {
	tb.Helper()
	rep, err := apa.Validate(strings.NewReader(doc), mustName(tb, defaultCallName), corpusOptions(), visit)
	if err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return rep
}

// TestValidateRules edits valide-minimal.xml one rule at a time. When
// xmllint is present it also checks that xmllint's verdict matches our
// schema-level verdict, unless the case is beyond what the XSD expresses.
func TestValidateRules(t *testing.T) {
	base := readFile(t, "testdata/valide-minimal.xml")
	long := func(n int) string { return strings.Repeat("A", n) }
	tests := []struct {
		name     string
		old, new string
		want     []string // sorted
		beyond   bool     // schema-level for us, accepted by xmllint
	}{
		{"Valid", "", "", nil, false},
		// Header.
		{"CampagneShort", "<Campagne>2026<", "<Campagne>26<", []string{"E003"}, false},
		{"CampagneSpace", "<Campagne>2026<", "<Campagne>2026 <", []string{"E003"}, false},
		{"CampagneOther", "<Campagne>2026<", "<Campagne>2025<", []string{"E004", "E008"}, false},
		{"SiretShort", "<SiretDeposant>22940028800010<", "<SiretDeposant>2294002880001<", []string{"E003"}, false},
		{"SiretOther", "<SiretDeposant>22940028800010<", "<SiretDeposant>21750001600019<", []string{"E004"}, false},
		{"DateCreation24h", "T10:15:00<", "T24:00:00<", []string{"E004"}, false},
		{"DateCreation29Feb", "2026-11-28T10:15:00<", "2026-02-29T10:15:00<", []string{"E003"}, false},
		{"DateCreationYear0", "2026-11-28T10:15:00<", "0000-11-28T10:15:00<", []string{"E003"}, false},
		{"DateCreationFraction", "T10:15:00<", "T10:15:00.5<", []string{"E003"}, false},
		{"DateCreationSpace", "2026-11-28T10:15:00<", "2026-11-28 10:15:00<", []string{"E003"}, false},
		{"DateCreationZ", "T10:15:00<", "T10:15:00Z<", []string{"E003"}, false},
		{"CourrielNoDot", "apa@valdemarne.fr", "apa@valdemarne", []string{"E003"}, false},
		{"CourrielAccent", "apa@valdemarne.fr", "hélène@valdemarne.fr", []string{"E003"}, false},
		{"CourrielSpecials", "apa@valdemarne.fr", "a.b+c_d'e@val-de-marne.fr", nil, false},
		{"CourrielTooLong", "apa@valdemarne.fr", strings.Repeat("a", 241) + "@valdemarne.fr", []string{"E003"}, false},
		{"EmetteurEmpty", "<Nom>DURAND</Nom>", "<Nom></Nom>", []string{"E003"}, false},
		{"EmetteurTooLong", "<Nom>DURAND</Nom>", "<Nom>" + long(81) + "</Nom>", []string{"E003"}, false},
		{"NombreLeadingZero", "<NombreDemandes>1<", "<NombreDemandes>001<", nil, false},
		{"NombreDecimal", "<NombreDemandes>1<", "<NombreDemandes>1.0<", []string{"E003"}, false},
		{"NombreNegative", "<NombreDemandes>1<", "<NombreDemandes>-1<", []string{"E003"}, false},
		{"NombreMismatch", "<NombreDemandes>1<", "<NombreDemandes>2<", []string{"E005"}, false},
		{"NombreHuge", "<NombreDemandes>1<", "<NombreDemandes>99999999999999999999<", []string{"E005"}, false},
		// Demande values.
		{"Reference30", ">APA-2026-000001<", ">" + long(30) + "<", nil, false},
		{"Reference31", ">APA-2026-000001<", ">" + long(31) + "<", []string{"E003"}, false},
		{"ReferenceSpace", ">APA-2026-000001<", ">APA 1<", []string{"E003"}, false},
		{"ReferenceAccent", ">APA-2026-000001<", ">APÉ<", []string{"E003"}, false},
		{"SexeLower", "<Sexe>F<", "<Sexe>f<", []string{"E003"}, false},
		{"SexeCharRef", "<Sexe>F<", "<Sexe>&#77;<", nil, false},
		{"SexeComment", "<Sexe>F<", "<Sexe><!-- x -->F<!-- y --><", nil, false},
		{"SexeChild", "<Sexe>F</Sexe>", "<Sexe><b>F</b></Sexe>", []string{"E003"}, false},
		{"Nom80", "<NomNaissance>MARTIN<", "<NomNaissance>" + long(80) + "<", nil, false},
		{"Nom81", "<NomNaissance>MARTIN<", "<NomNaissance>" + long(81) + "<", []string{"E003"}, false},
		{"NomLatin", "<NomNaissance>MARTIN<", "<NomNaissance>Ö'Ÿ-ß ŒUF ſ<", nil, false},
		{"NomBeyondLatin", "<NomNaissance>MARTIN<", "<NomNaissance>MARTINǄ<", []string{"E003"}, false},
		{"NomDot", "<NomNaissance>MARTIN<", "<NomNaissance>ST. MARTIN<", []string{"E003"}, false},
		{"NomTimes", "<NomNaissance>MARTIN<", "<NomNaissance>MARTIN×<", []string{"E003"}, false},
		{"NomUsageEmpty", "<Prenoms>", "<NomUsage></NomUsage><Prenoms>", []string{"E003"}, false},
		{"NomUsageAfterPrenoms", "<DateNaissance>", "<NomUsage>PETIT</NomUsage><DateNaissance>", []string{"E003"}, false},
		{"Prenoms100", "<Prenoms>Jeanne Marie<", "<Prenoms>" + long(100) + "<", nil, false},
		{"Prenoms101", "<Prenoms>Jeanne Marie<", "<Prenoms>" + long(101) + "<", []string{"E003"}, false},
		{"DateShortMonth", ">1938-02-14<", ">1938-2-14<", []string{"E003"}, false},
		{"DateDay32", ">1938-02-14<", ">1938-02-32<", []string{"E003"}, false},
		{"DateUnknownMonthDay31", ">1938-02-14<", ">1938-00-31<", nil, false},
		{"DateUnknownDay", ">1938-02-14<", ">1938-02-00<", nil, false},
		{"Date1900Feb29", ">1938-02-14<", ">1900-02-29<", []string{"R101"}, false},
		{"Date2000Feb29", ">1938-02-14<", ">2000-02-29<", nil, false},
		{"DateJune31", ">1938-02-14<", ">1938-06-31<", []string{"R101"}, false},
		{"DateFuture", ">1938-02-14<", ">2026-11-29<", []string{"R101"}, false},
		{"DateSameDay", ">1938-02-14<", ">2026-11-28<", nil, false},
		{"Date1849", ">1938-02-14<", ">1849-12-31<", []string{"R101"}, false},
		{"CommuneCorsicaBad", "<CodeCommune>94028<", "<CodeCommune>2C123<", []string{"E003"}, false},
		{"CommuneCorsicaLower", "<CodeCommune>94028<", "<CodeCommune>2a004<", []string{"E003"}, false},
		{"CommuneShort", "<CodeCommune>94028<", "<CodeCommune>2A04<", []string{"E003"}, false},
		{"CommuneUnknown", "<CodeCommune>94028<", "<CodeCommune>94999<", []string{"R102"}, false},
		{"CommuneCorsica", "<CodeCommune>94028<", "<CodeCommune>2A004<", nil, false},
		{"PaysBadPrefix", "<CodeCommune>94028</CodeCommune>", "<CodePays>98350</CodePays>", []string{"E003"}, false},
		{"PaysKnown", "<CodeCommune>94028</CodeCommune>", "<CodePays>99109</CodePays>", nil, false},
		{"PaysUnknown", "<CodeCommune>94028</CodeCommune>", "<CodePays>99999</CodePays>", []string{"R102"}, false},
		{"LieuEmpty", "<CodeCommune>94028</CodeCommune>", "", []string{"E003"}, false},
		{"Libelle60", "</CodeCommune>", "</CodeCommune><Libelle>" + long(60) + "</Libelle>", nil, false},
		{"Libelle61", "</CodeCommune>", "</CodeCommune><Libelle>" + long(61) + "</Libelle>", []string{"E003"}, false},
		{"LibelleBeforeCode", "<CodeCommune>", "<Libelle>CRETEIL</Libelle><CodeCommune>", []string{"E003"}, false},
		{"Ligne38Accents", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>" + strings.Repeat("é", 38) + "<", nil, false},
		{"Ligne39", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>" + long(39) + "<", []string{"E003"}, false},
		{"LigneSelfClosing", "</Ligne1>", "</Ligne1><Ligne2/>", []string{"E003"}, false},
		{"Ligne3BeforeLigne2", "</Ligne1>", "</Ligne1><Ligne3>B</Ligne3><Ligne2>A</Ligne2>", []string{"E003"}, false},
		{"CodePostalShort", "<CodePostal>94000<", "<CodePostal>9400<", []string{"E003"}, false},
		{"CodePostalSpace", "<CodePostal>94000<", "<CodePostal>94000 <", []string{"E003"}, false},
		{"CodePostalMismatch", "<CodePostal>94000<", "<CodePostal>94300<", []string{"R103"}, false},
		{"CommuneAccents", "<Commune>CRETEIL<", "<Commune>Créteil<", nil, false},
		{"Commune46", "<Commune>CRETEIL<", "<Commune>" + long(46) + "<", []string{"E003"}, false},
		{"AdresseMisspelt", "<Adresse>", "<Adresse2>", []string{"E001", "E003"}, false},
		{"SexeTwice", "<Sexe>F</Sexe>", "<Sexe>F</Sexe><Sexe>F</Sexe>", []string{"E003"}, false},
		{"AttributeOnDemande", "<Demande>", `<Demande id="1">`, []string{"E003"}, false},
		{"XMLLang", `<DemandeAPA version="1.0">`, `<DemandeAPA version="1.0" xml:lang="fr">`, []string{"E003"}, false},
		{"VersionSpace", `version="1.0">`, `version=" 1.0">`, []string{"E003"}, false},
		{"VersionSingleQuotes", `version="1.0">`, `version='1.0' >`, nil, false},
		{"EmptyDefaultNamespace", `version="1.0">`, `version="1.0" xmlns="">`, nil, false},
		{"PrefixedElement", "<Sexe>F</Sexe>", `<a:Sexe xmlns:a="urn:x">F</a:Sexe>`, []string{"E003"}, false},
		// Forbidden data.
		{"IBANInLibelle", "</CodeCommune>", "</CodeCommune><Libelle>GB82 WEST 1234 5698 7654 32</Libelle>", []string{"E007"}, false},
		{"NIRInCommune", "<Commune>CRETEIL<", "<Commune>CRETEIL 238029402812301<", []string{"E007", "R103"}, false},
		{"BICWithBranch", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>BNPAFRPP123<", []string{"E007"}, false},
		{"BICWordOnly", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>BOULOGNE<", nil, false},
		{"NIRBadKey", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>2 38 02 94 028 123 02<", []string{"E007"}, false},
		{"NIRNoKey", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>NIR 2 38 02 94 028 123<", []string{"E007"}, false},
		{"IBANBadKey", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>FR76 3000 6000 0112 3456 7890 188<", []string{"E007"}, false},
		{"NIRInReference", "<ReferenceDossier>APA-2026-000001<", "<ReferenceDossier>1380594028123<", []string{"E007"}, false},
		{"SiretTypoNotNIR", "<SiretDeposant>22940028800010<", "<SiretDeposant>229400288000105<", []string{"E003"}, false},
		{"PhoneNumber", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>TEL 01 45 17 22 33<", nil, false},
		// Well-formedness and encoding.
		{"EndTagCase", "<Sexe>F</Sexe>", "<Sexe>F</sexe>", []string{"E001"}, false},
		{"UnquotedAttribute", `version="1.0"`, `version=1.0`, []string{"E001"}, false},
		{"CharRefNUL", "<Sexe>F<", "<Sexe>F&#0;<", []string{"E001"}, false},
		{"CharRefSurrogate", "<Sexe>F<", "<Sexe>F&#xD800;<", []string{"E001"}, false},
		{"NameStartsWithDigit", "<Sexe>F</Sexe>", "<1Sexe>F</1Sexe>", []string{"E001"}, false},
		{"CDATAEndInText", "<Ligne1>12 RUE DES LILAS<", "<Ligne1>12 ]]> LILAS<", []string{"E001"}, false},
		{"CommentUnclosed", "</DemandeAPA>", "</DemandeAPA><!-- fin", []string{"E001"}, false},
		{"CommentTripleDash", "<Entete>", "<!-- x ---><Entete>", []string{"E001"}, false},
		{"PIXmlInside", "<Entete>", "<?xml version='1.0'?><Entete>", []string{"E001"}, false},
		{"PIOtherInside", "<Entete>", "<?xml-stylesheet href='a'?><Entete>", nil, false},
		{"AttrLessThan", `version="1.0"`, `version="1<0"`, []string{"E001"}, false},
		{"NoSpaceBetweenAttrs", `version="1.0">`, `version="1.0"a="b">`, []string{"E001"}, false},
		{"CDATAOutsideRoot", "</DemandeAPA>", "</DemandeAPA><![CDATA[x]]>", []string{"E001"}, false},
		{"XMLVersion11", `<?xml version="1.0"`, `<?xml version="1.1"`, nil, false},
		{"XMLVersion2", `<?xml version="1.0"`, `<?xml version="2.0"`, []string{"E001"}, false},
		{"DeclEncodingBeforeVersion", `<?xml version="1.0" encoding="UTF-8"?>`, `<?xml encoding="UTF-8" version="1.0"?>`, []string{"E001"}, false},
		{"EncodingLatin1Alias", `encoding="UTF-8"`, `encoding="latin1"`, []string{"E002"}, true},
		{"EncodingASCII", `encoding="UTF-8"`, `encoding="US-ASCII"`, []string{"E002"}, true},
		{"EncodingUTF8Lower", `encoding="UTF-8"`, `encoding="utf-8"`, nil, false},
		{"Doctype", "<DemandeAPA", "<!DOCTYPE DemandeAPA><DemandeAPA", []string{"E001"}, true},
		{"TooDeep", "<Ligne1>12 RUE DES LILAS</Ligne1>", "<Ligne1>" + strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300) + "</Ligne1>", []string{"E001", "E003"}, false},
		{"InvalidUTF8InAttribute", `<DemandeAPA version="1.0"`, "<DemandeAPA version=\"1.0\xff\"", []string{"E002"}, false},
		{"LongName", "<Sexe>F</Sexe>", "<" + strings.Repeat("S", 1001) + "/><Sexe>F</Sexe>", []string{"E001"}, false},
		{"ManyAttributes", "<Demande>", "<Demande" + manyAttrs(65) + ">", []string{"E001"}, false},
		{"TruncatedAfterRoot", "</DemandeAPA>", "", []string{"E001"}, false},
	}
	bin := ""
	if _, err := os.Stat("/usr/bin/xmllint"); err == nil {
		bin = "/usr/bin/xmllint"
	}
	schema := filepath.Join("xsd", apa.SchemaRequest)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base
			if tt.old != "" {
				if !strings.Contains(doc, tt.old) {
					t.Fatalf("%q not in the base file", tt.old)
				}
				doc = strings.Replace(doc, tt.old, tt.new, 1)
			}
			rep := validateString(t, doc, nil)
			if got := sortedCodes(rep); !slices.Equal(got, tt.want) {
				t.Errorf("got codes %v, want %v\n%s", got, tt.want, dump(rep))
			}
			if bin == "" {
				return
			}
			path := filepath.Join(t.TempDir(), "call.xml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			valid, out := xmllintValid(t, bin, schema, path)
			if ours := schemaInvalid(tt.want); ours == valid != tt.beyond {
				t.Errorf("xmllint valid=%v, our schema-level rejection=%v, beyond-xsd=%v\n%s", valid, ours, tt.beyond, out)
			}
		})
	}
}

func TestValidateVisit(t *testing.T) {
	var got []apa.Demande
	rep := validateString(t, readFile(t, "testdata/valide-complet.xml"), func(d apa.Demande) error {
		got = append(got, d)
		return nil
	})
	if rep.Total != 0 || rep.Demandes != 3 || rep.Encoding != "UTF-8" {
		t.Fatalf("got %d anomalies, %d demandes, encoding %s; want 0, 3, UTF-8\n%s", rep.Total, rep.Demandes, rep.Encoding, dump(rep))
	}
	want := []apa.Demande{{
		Index: 1, Line: 14, Column: 3, Reference: "APA-2026-000001", Sex: "F", BirthName: "MARTIN", UsageName: "LEFÈVRE",
		FirstName: "Jeanne Marie Thérèse", BirthDate: "1938-02-14", BirthCommune: "94028", BirthPlace: "Créteil",
		Address: apa.Address{Line1: "12 RUE DES LILAS", Line2: "BATIMENT B ESCALIER 3", Line3: "RESIDENCE LES TILLEULS", PostalCode: "94000", Commune: "CRETEIL"},
	}, {
		Index: 2, Line: 33, Column: 3, Reference: "APA-2026-000002", Sex: "M", BirthName: "DUPONT", FirstName: "Jean",
		BirthDate: "1940-02-29", BirthCommune: "75056", BirthPlace: "Paris",
		Address: apa.Address{Line1: "3 AVENUE DE LA REPUBLIQUE", PostalCode: "75011", Commune: "PARIS"},
	}, {
		Index: 3, Line: 49, Column: 3, Reference: "APA_2026_000003", Sex: "F", BirthName: "BERNARD", UsageName: "PETIT", FirstName: "Louise",
		BirthDate: "1935-12-31", BirthCommune: "94080",
		Address: apa.Address{Line1: "5 RUE DE FONTENAY", Line3: "APPARTEMENT 12", PostalCode: "94300", Commune: "VINCENNES"},
	}}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("record %d:\ngot  %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
	h := rep.Header
	wantCreated := time.Date(2026, 11, 28, 10, 15, 0, 0, apa.Paris)
	if h.Campaign != 2026 || h.SIRET != "22940028800010" || !h.Created.Equal(wantCreated) || h.Contact != "apa@valdemarne.fr" ||
		h.SenderName != "DURAND" || h.SenderFirstName != "Claire" || h.Declared != 3 {
		t.Errorf("got header %+v", h)
	}
}

func TestValidateVisitRejectedRecord(t *testing.T) {
	var got []apa.Demande
	rep := validateString(t, readFile(t, "testdata/r101-une-demande-sur-trois.xml"), func(d apa.Demande) error {
		got = append(got, d)
		return nil
	})
	if rep.Rejected() || rep.RecordsRejected != 1 || len(got) != 3 {
		t.Fatalf("got rejected=%v, %d records rejected, %d visited; want false, 1, 3", rep.Rejected(), rep.RecordsRejected, len(got))
	}
	if got[0].Rejected() || !got[1].Rejected() || got[2].Rejected() {
		t.Fatalf("got rejected %v %v %v, want false true false", got[0].Rejected(), got[1].Rejected(), got[2].Rejected())
	}
	a := got[1].Anomalies[0]
	if a.Code != apa.CodeBirthDate || a.Severity != apa.SeverityWarning || a.Reference != "D2" || a.Path != "/DemandeAPA/Demande[2]/DateNaissance" {
		t.Errorf("got anomaly %+v", a)
	}
	res := apa.RejectedResult(got[1])
	if res.Status != apa.StatusRejected || res.Reason == nil || res.Reason.Code != apa.CodeBirthDate || res.Reference != "D2" {
		t.Errorf("got result %+v", res)
	}
}

// TestValidateVisitStops checks that visit is not called after a blocking
// anomaly.
func TestValidateVisitStops(t *testing.T) {
	doc := readFile(t, "testdata/r101-une-demande-sur-trois.xml")
	doc = strings.Replace(doc, "<Sexe>F</Sexe>", "<Sexe>X</Sexe>", 2) // records 1 and 2
	var refs []string
	rep := validateString(t, doc, func(d apa.Demande) error {
		refs = append(refs, d.Reference)
		return nil
	})
	if !rep.Rejected() || len(refs) != 0 {
		t.Errorf("got rejected=%v and visited %v, want true and none", rep.Rejected(), refs)
	}
	doc = strings.Replace(readFile(t, "testdata/r101-une-demande-sur-trois.xml"), ">D2<", ">D1<", 1)
	refs = nil
	rep = validateString(t, doc, func(d apa.Demande) error {
		refs = append(refs, d.Reference)
		return nil
	})
	if got := sortedCodes(rep); !slices.Equal(got, []string{"E009", "R101"}) || !slices.Equal(refs, []string{"D1"}) {
		t.Errorf("got codes %v and visited %v, want [E009 R101] and [D1]", got, refs)
	}
}

func TestValidateVisitError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := apa.Validate(strings.NewReader(readFile(t, "testdata/valide-complet.xml")), apa.CallName{}, apa.Options{}, func(apa.Demande) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("got error %v after %d records, want %v after 1", err, n, stop)
	}
}

type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestValidateReadError(t *testing.T) {
	r := &failingReader{r: strings.NewReader(readFile(t, "testdata/valide-complet.xml")), n: 500}
	rep, err := apa.Validate(r, apa.CallName{}, apa.Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got error %v, want the read error", err)
	}
	if rep.Total != 0 {
		t.Errorf("got anomalies for a read error:\n%s", dump(rep))
	}
}

// oneByteReader returns one byte per Read, to exercise buffer boundaries.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestValidateByteByByte(t *testing.T) {
	for _, c := range readManifest(t) {
		if strings.HasSuffix(c.File, ".gz") {
			continue
		}
		whole, _ := validateCorpus(t, c)
		rc := openCorpus(t, c.File)
		rep, err := apa.Validate(oneByteReader{rc}, mustName(t, c.CallName), corpusOptions(), nil)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rep.Anomalies) != fmt.Sprint(whole.Anomalies) {
			t.Errorf("%s: byte by byte got\n%+v\nwant\n%+v", c.File, rep.Anomalies, whole.Anomalies)
		}
	}
}

func TestValidatePositions(t *testing.T) {
	doc := readFile(t, "testdata/valide-minimal.xml")
	doc = strings.Replace(doc, "<Ligne1>12 RUE DES LILAS</Ligne1>", "<Ligne1>ÉÉÉ</Ligne1><Foo/>", 1)
	rep := validateString(t, doc, nil)
	if len(rep.Anomalies) != 1 {
		t.Fatalf("got %d anomalies, want 1\n%s", len(rep.Anomalies), dump(rep))
	}
	a := rep.Anomalies[0]
	if a.Line != 24 || a.Column != 27 || a.Path != "/DemandeAPA/Demande[1]/Adresse/Foo" || a.Reference != "APA-2026-000001" {
		t.Errorf("got %d:%d %s [%s], want 24:27 /DemandeAPA/Demande[1]/Adresse/Foo [APA-2026-000001]", a.Line, a.Column, a.Path, a.Reference)
	}
}

func TestValidateCampaignWindow(t *testing.T) {
	doc := readFile(t, "testdata/valide-minimal.xml")
	name := mustName(t, defaultCallName)
	open := apa.Window{Campaign: 2026, Open: time.Date(2026, 9, 21, 0, 0, 0, 0, apa.Paris), Close: time.Date(2026, 12, 31, 23, 59, 59, 0, apa.Paris)}
	tests := []struct {
		name string
		opts apa.Options
		want []string
	}{
		{"NotEnforced", apa.Options{}, nil},
		{"Open", apa.Options{Windows: []apa.Window{open}, DepositedAt: time.Date(2026, 12, 31, 23, 0, 0, 0, apa.Paris)}, nil},
		{"OpenAtNameTime", apa.Options{Windows: []apa.Window{open}}, nil},
		{"AfterClose", apa.Options{Windows: []apa.Window{open}, DepositedAt: time.Date(2027, 1, 1, 0, 0, 0, 0, apa.Paris)}, []string{"E008"}},
		{"BeforeOpen", apa.Options{Windows: []apa.Window{open}, DepositedAt: time.Date(2026, 9, 20, 23, 59, 0, 0, apa.Paris)}, []string{"E008"}},
		{"OtherCampaignOnly", apa.Options{Windows: []apa.Window{{Campaign: 2025, Open: open.Open.AddDate(-1, 0, 0), Close: open.Close.AddDate(-1, 0, 0)}}}, []string{"E008"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := apa.Validate(strings.NewReader(doc), name, tt.opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedCodes(rep); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestValidateWithoutName checks that a zero CallName skips E004.
func TestValidateWithoutName(t *testing.T) {
	rep, err := apa.Validate(strings.NewReader(readFile(t, "testdata/e004-siret.xml")), apa.CallName{}, apa.Options{}, nil)
	if err != nil || rep.Total != 0 {
		t.Errorf("got %v and\n%s, want no anomaly", err, dump(rep))
	}
}

// TestValidateAnomalyCap checks the cap of the list: 1500 rejected records
// then a wrong NombreDemandes; the blocking anomaly must be listed.
func TestValidateAnomalyCap(t *testing.T) {
	const n = 1500
	var b strings.Builder
	head := readFile(t, "testdata/valide-minimal.xml")
	start := strings.Index(head, "  <Demande>")
	end := strings.Index(head, "</DemandeAPA>")
	rec := strings.Replace(head[start:end], ">1938-02-14<", ">1938-02-30<", 1)
	b.WriteString(strings.Replace(head[:start], "<NombreDemandes>1<", "<NombreDemandes>1<", 1))
	for i := range n {
		b.WriteString(strings.Replace(rec, "APA-2026-000001", fmt.Sprintf("R%d", i), 1))
	}
	b.WriteString("</DemandeAPA>\n")
	rep := validateString(t, b.String(), nil)
	if rep.Total != n+1 || len(rep.Anomalies) != apa.MaxListedAnomalies || rep.RecordsRejected != n || rep.Blocking() != 1 {
		t.Fatalf("got total %d, listed %d, records rejected %d, blocking %d; want %d, %d, %d, 1",
			rep.Total, len(rep.Anomalies), rep.RecordsRejected, rep.Blocking(), n+1, apa.MaxListedAnomalies, n)
	}
	if last := rep.Anomalies[len(rep.Anomalies)-1]; last.Code != apa.CodeCountMismatch {
		t.Errorf("got last listed anomaly %s, want E005", last.Code)
	}
}

func TestValidateTooMany(t *testing.T) {
	if testing.Short() {
		t.Skip("60 MB file")
	}
	g := newGenerator(apa.MaxDemandes + 1)
	rep, err := apa.Validate(g, mustName(t, defaultCallName), apa.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedCodes(rep); !slices.Equal(got, []string{"E006"}) || rep.Demandes != apa.MaxDemandes+1 {
		t.Errorf("got %v for %d demandes, want [E006] for %d", got, rep.Demandes, apa.MaxDemandes+1)
	}
	if a := rep.Anomalies[0]; a.Path != "/DemandeAPA/Demande[100001]" {
		t.Errorf("got path %s", a.Path)
	}
}

// TestValidateDuplicateReferences checks that E009 names the request that
// first used the reference, for every later use.
func TestValidateDuplicateReferences(t *testing.T) {
	head := readFile(t, "testdata/valide-minimal.xml")
	start := strings.Index(head, "  <Demande>")
	end := strings.Index(head, "</DemandeAPA>")
	var b strings.Builder
	b.WriteString(strings.Replace(head[:start], "<NombreDemandes>1<", "<NombreDemandes>6<", 1))
	for _, ref := range []string{"R1", "R2", "R3", "R2", "R1", "R2"} {
		b.WriteString(strings.Replace(head[start:end], "APA-2026-000001", ref, 1))
	}
	b.WriteString("</DemandeAPA>\n")
	rep := validateString(t, b.String(), nil)
	want := map[string]string{"/DemandeAPA/Demande[4]/ReferenceDossier": "n° 2", "/DemandeAPA/Demande[5]/ReferenceDossier": "n° 1",
		"/DemandeAPA/Demande[6]/ReferenceDossier": "n° 2"}
	if len(rep.Anomalies) != len(want) {
		t.Fatalf("got %d anomalies (%+v), want %d E009", len(rep.Anomalies), rep.Anomalies, len(want))
	}
	for _, a := range rep.Anomalies {
		if a.Code != apa.CodeDuplicateRef || want[a.Path] == "" || !strings.HasSuffix(a.Label, "demande "+want[a.Path]) {
			t.Errorf("got %s %q at %s, want E009 naming the %s", a.Code, a.Label, a.Path, want[a.Path])
		}
	}
}

// TestValidateDuplicatePastLimit: past MaxDemandes (E006) references are
// no longer kept, but a reuse of an earlier one is still reported.
func TestValidateDuplicatePastLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("60 MB file")
	}
	g := newGenerator(apa.MaxDemandes + 2)
	g.ref = func(i int) int {
		if i == apa.MaxDemandes+2 {
			return 7
		}
		return i
	}
	rep, err := apa.Validate(g, mustName(t, defaultCallName), apa.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedCodes(rep); !slices.Equal(got, []string{"E006", "E009"}) {
		t.Fatalf("got %v, want [E006 E009]", got)
	}
	for _, a := range rep.Anomalies {
		if a.Code == apa.CodeDuplicateRef && (a.Path != "/DemandeAPA/Demande[100002]/ReferenceDossier" || !strings.HasSuffix(a.Label, "n° 7")) {
			t.Errorf("got %q at %s", a.Label, a.Path)
		}
	}
}

// TestValidateCountOverLimit: over MaxDemandes (E006), NombreDemandes is
// still compared with the real count as written (E005 only if they differ).
func TestValidateCountOverLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("60 MB files")
	}
	for declared, want := range map[string][]string{
		"100002":      {"E006"},
		"+0100002":    {"E006"},
		"100001":      {"E005", "E006"},
		"99999999999": {"E005", "E006"},
	} {
		g := newGenerator(apa.MaxDemandes + 2)
		g.declared = declared
		rep, err := apa.Validate(g, mustName(t, defaultCallName), apa.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := sortedCodes(rep); !slices.Equal(got, want) {
			t.Errorf("NombreDemandes %s for %d requests: got %v, want %v", declared, apa.MaxDemandes+2, got, want)
		}
	}
}

// TestValidateCountAfterRequests: a NombreDemandes out of place (after the
// requests) is a structure error and does not disturb duplicate detection.
func TestValidateCountAfterRequests(t *testing.T) {
	doc := readFile(t, "testdata/e009-reference-double.xml")
	i := strings.Index(doc, "</DemandeAPA>")
	doc = doc[:i] + "<NombreDemandes>100000</NombreDemandes>\n" + doc[i:]
	rep := validateString(t, doc, nil)
	if got := sortedCodes(rep); !slices.Contains(got, "E003") || !slices.Contains(got, "E009") {
		t.Errorf("got %v, want E003 and E009", got)
	}
}

// personalElements hold personal values that no label may repeat.
var personalElements = regexp.MustCompile(`<(NomNaissance|NomUsage|Prenoms|DateNaissance|Libelle|Ligne[123]|Commune|CodePostal|CodeCommune|CodePays)>([^<]+)<`)

func TestLabelsNeverEchoPersonalValues(t *testing.T) {
	for _, c := range readManifest(t) {
		if strings.HasSuffix(c.File, ".gz") {
			continue
		}
		rep, _ := validateCorpus(t, c)
		content := readFile(t, filepath.Join("testdata", c.File))
		for _, m := range personalElements.FindAllStringSubmatch(content, -1) {
			value := strings.TrimSpace(m[2])
			if len(value) < 4 {
				continue
			}
			for _, a := range rep.Anomalies {
				if strings.Contains(a.Label, value) {
					t.Errorf("%s: label %q repeats the %s value", c.File, a.Label, m[1])
				}
			}
		}
	}
}

func TestCodeLabel(t *testing.T) {
	for _, code := range []string{"E001", "E002", "E003", "E004", "E005", "E006", "E007", "E008", "E009", "E010", "R101", "R102", "R103", "N201", "N202"} {
		if apa.CodeLabel(code) == "" {
			t.Errorf("no label for %s", code)
		}
	}
	if got := apa.CodeLabel("X999"); got != "" {
		t.Errorf("got %q for an unknown code, want \"\"", got)
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d=''", i)
	}
	return b.String()
}
