package fiscal_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/fiscal"
)

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Lefèvre", "LEFEVRE"},
		{"  Hélène  ", "HELENE"},
		{"Jean-Pierre", "JEAN PIERRE"},
		{"Jean - Pierre", "JEAN PIERRE"},
		{"D'Arcy", "D ARCY"},
		{"D’Arcy", "D ARCY"},
		{"N''Diaye", "N DIAYE"},
		{"De  la   Fontaine", "DE LA FONTAINE"},
		{"Œillet", "OEILLET"},
		{"Lætitia", "LAETITIA"},
		{"ÉVRARD", "EVRARD"},
		{"Saint-Martin--d'Hères", "SAINT MARTIN D HERES"},
		{"-Leading", "LEADING"},
		{"Çà", "CA"},
		{"", ""},
	} {
		if got := fiscal.NormalizeName(tc.in); got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFirstFirstName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Jean-Pierre Marie", "JEAN PIERRE"},
		{"  Hélène   Marie ", "HELENE"},
		{"Noël", "NOEL"},
		{"", ""},
	} {
		if got := fiscal.FirstFirstName(tc.in); got != tc.want {
			t.Errorf("FirstFirstName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBirthDateMatches(t *testing.T) {
	for _, tc := range []struct {
		req, known string
		want       bool
	}{
		{"1938-04-12", "1938-04-12", true},
		{"1938-04-12", "1938-04-13", false},
		{"1938-04-00", "1938-04-13", true},
		{"1938-00-00", "1938-11-30", true},
		{"1938-00-12", "1938-11-12", true},
		{"1938-00-12", "1938-11-13", false},
		{"1939-00-00", "1938-11-30", false},
		{"1938-04-12", "1938-04-00", true}, // unknown day in the reference data
		{"1938-4-12", "1938-04-12", false},
	} {
		if got := fiscal.BirthDateMatches(tc.req, tc.known); got != tc.want {
			t.Errorf("BirthDateMatches(%q, %q) = %v, want %v", tc.req, tc.known, got, tc.want)
		}
	}
}

// memLookup is an in-memory Lookup over a reference-data file.
type memLookup struct{ data *fiscal.Data }

func (m memLookup) FindPersonsByNames(_ context.Context, keys [][2]string) ([]pigp.Person, error) {
	var out []pigp.Person
	for _, p := range m.data.Persons {
		for _, k := range keys {
			if p.NameKey == k[0] && p.FirstNameKey == k[1] {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (m memLookup) FindFoyers(_ context.Context, ids []string, year int) (map[string]*pigp.Foyer, error) {
	out := map[string]*pigp.Foyer{}
	for _, id := range ids {
		f := &pigp.Foyer{ID: id}
		for _, p := range m.data.Persons {
			if p.FoyerID == id {
				f.Declarants = append(f.Declarants, p)
			}
		}
		for _, r := range m.data.Resources {
			if r.FoyerID == id && r.Year == year {
				f.Resources = append(f.Resources, r)
			}
		}
		if len(f.Declarants) > 0 {
			out[id] = f
		}
	}
	return out, nil
}

const sample = `foyer;rang;sexe;nom_naissance;nom_usage;prenoms;date_naissance;lieu_naissance;annee_revenus;tspr;bns;pvm;rcm;rcm_pfl;rf
F1;1;F;Lefèvre;Martin;Jeanne Marie;1938-04-12;94028;2025;18240;;;312;;
F1;2;M;Martin;;Jean-Pierre;1935-01-02;99350;2025;21000;;;;;
F2;1;M;Dupont;;Louis;1940-05-06;75056;2025;15000;;;;;
F3;1;M;Dupont;;Louis André;1940-05-06;13055;2025;16000;;;;;
F4;1;F;Noël;;Élise;1930-07-08;69123;2025;9000;;;;;
F5;1;F;Noël;;Élise;1930-07-08;69123;2025;9100;;;;;
F1;1;F;Lefèvre;Martin;Jeanne Marie;1938-04-12;94028;2024;17000;;;;;
`

func TestMatch(t *testing.T) {
	data, err := fiscal.ReadCSV(strings.NewReader(sample), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := memLookup{data}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		req    fiscal.Request
		status string
		foyer  string
	}{
		{"exact", fiscal.Request{Sex: "F", BirthName: "Lefèvre", FirstNames: "Jeanne", BirthDate: "1938-04-12", BirthPlace: "94028"}, fiscal.Found, "F1"},
		{"accents and case", fiscal.Request{Sex: "F", BirthName: "LEFEVRE", FirstNames: "jeanne Marie", BirthDate: "1938-04-12"}, fiscal.Found, "F1"},
		{"unknown day and month", fiscal.Request{Sex: "F", BirthName: "Lefèvre", FirstNames: "Jeanne", BirthDate: "1938-00-00"}, fiscal.Found, "F1"},
		{"hyphenated first name", fiscal.Request{Sex: "M", BirthName: "Martin", FirstNames: "Jean Pierre", BirthDate: "1935-01-02"}, fiscal.NotFound, ""},
		{"hyphen folded", fiscal.Request{Sex: "M", BirthName: "Martin", FirstNames: "Jean-Pierre", BirthDate: "1935-01-02"}, fiscal.Found, "F1"},
		{"wrong sex", fiscal.Request{Sex: "M", BirthName: "Lefèvre", FirstNames: "Jeanne", BirthDate: "1938-04-12"}, fiscal.NotFound, ""},
		{"wrong date", fiscal.Request{Sex: "F", BirthName: "Lefèvre", FirstNames: "Jeanne", BirthDate: "1938-04-13"}, fiscal.NotFound, ""},
		{"homonyms narrowed by place", fiscal.Request{Sex: "M", BirthName: "Dupont", FirstNames: "Louis", BirthDate: "1940-05-06", BirthPlace: "13055"}, fiscal.Found, "F3"},
		{"homonyms without place", fiscal.Request{Sex: "M", BirthName: "Dupont", FirstNames: "Louis", BirthDate: "1940-05-06"}, fiscal.Ambiguous, ""},
		{"homonyms same place", fiscal.Request{Sex: "F", BirthName: "Noel", FirstNames: "Elise", BirthDate: "1930-07-08", BirthPlace: "69123"}, fiscal.Ambiguous, ""},
		{"homonyms, place matches none", fiscal.Request{Sex: "M", BirthName: "Dupont", FirstNames: "Louis", BirthDate: "1940-05-06", BirthPlace: "99109"}, fiscal.Ambiguous, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := fiscal.Match(ctx, l, tc.req, 2025)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s", res.Status, tc.status)
			}
			switch tc.status {
			case fiscal.Found:
				if res.Foyer.ID != tc.foyer {
					t.Fatalf("foyer %s, want %s", res.Foyer.ID, tc.foyer)
				}
			case fiscal.NotFound:
				if res.Code != "N201" {
					t.Fatalf("code %s, want N201", res.Code)
				}
			case fiscal.Ambiguous:
				if res.Code != "N202" {
					t.Fatalf("code %s, want N202", res.Code)
				}
			}
		})
	}
	res, _ := fiscal.Match(ctx, l, fiscal.Request{Sex: "F", BirthName: "Lefèvre", FirstNames: "Jeanne", BirthDate: "1938-04-12"}, 2025)
	if len(res.Foyer.Declarants) != 2 || len(res.Foyer.Resources) != 3 {
		t.Fatalf("foyer F1 for 2025: %+v", res.Foyer)
	}
}

func TestReadCSVErrors(t *testing.T) {
	header := strings.Join(fiscal.Columns, ";") + "\n"
	ok := "F1;1;F;Nom;;Prénom;1938-04-12;94028;2025;100;;;;;\n"
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "", "ligne 1 : fichier vide"},
		{"bad header", strings.Repeat("x;", 14) + "x\n", "ligne 1 : en-tête attendu"},
		{"columns", header + "F1;1;F\n", "ligne 2 : 15 colonnes"},
		{"rank", header + ok + "F1;3;F;Nom;;P;1938-04-12;94028;2025;;;;;;\n", "ligne 3 : colonne rang"},
		{"sex", header + "F1;1;X;Nom;;P;1938-04-12;94028;2025;;;;;;\n", "ligne 2 : colonne sexe"},
		{"date", header + "F1;1;F;Nom;;P;1938-02-30;94028;2025;;;;;;\n", "ligne 2 : colonne date_naissance"},
		{"place", header + "F1;1;F;Nom;;P;1938-02-03;9402;2025;;;;;;\n", "ligne 2 : colonne lieu_naissance"},
		{"amount", header + "F1;1;F;Nom;;P;1938-02-03;94028;2025;-5;;;;;\n", "ligne 2 : colonne tspr"},
		{"foyer resource on rank 2", header + ok + "F1;2;M;Nom;;P;1938-02-03;94028;2025;;;;12;;\n", "ligne 3 : colonne rcm"},
		{"duplicate amount", header + ok + ok, "ligne 3 : colonne tspr : montant déjà donné ligne 2"},
		{"conflicting person", header + ok + "F1;1;F;Autre;;Prénom;1938-04-12;94028;2024;;;;;;\n", "ligne 3 : le déclarant F1/1"},
		{"quote", header + "F1;1;F;No\"m;;P;1938-04-12;94028;2025;;;;;;\n", "ligne 2 : guillemets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fiscal.ReadCSV(strings.NewReader(tc.body), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	var a, b, c bytes.Buffer
	n, err := fiscal.Generate(&a, fiscal.GenerateOptions{Count: 3000, Seed: 7, IncomeYear: 2025})
	if err != nil || n != 3000 {
		t.Fatalf("Generate = %d, %v", n, err)
	}
	fiscal.Generate(&b, fiscal.GenerateOptions{Count: 3000, Seed: 7, IncomeYear: 2025})
	fiscal.Generate(&c, fiscal.GenerateOptions{Count: 3000, Seed: 8, IncomeYear: 2025})
	if !bytes.Equal(a.Bytes(), b.Bytes()) || bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("the seed does not determine the output")
	}
	data, err := fiscal.ReadCSV(bytes.NewReader(a.Bytes()), nil)
	if err != nil {
		t.Fatalf("generated file does not import: %v", err)
	}
	foyers := map[string]int{}
	accents, abroad := 0, 0
	identity := map[string]int{}
	for _, p := range data.Persons {
		foyers[p.FoyerID]++
		if fiscal.NormalizeName(p.BirthName) != strings.ToUpper(p.BirthName) {
			accents++
		}
		if strings.HasPrefix(p.BirthPlace, "99") {
			abroad++
		}
		identity[p.NameKey+"|"+p.FirstNameKey+"|"+p.Sex+"|"+p.BirthDate]++
	}
	couples, homonyms := 0, 0
	for _, n := range foyers {
		if n == 2 {
			couples++
		}
	}
	for _, n := range identity {
		if n > 1 {
			homonyms++
		}
	}
	if couples < 300 || accents < 100 || abroad < 100 || homonyms < 10 {
		t.Fatalf("couples %d, names with accents or separators %d, born abroad %d, homonym groups %d", couples, accents, abroad, homonyms)
	}
}
