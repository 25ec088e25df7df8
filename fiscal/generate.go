package fiscal

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Synthetic names: common French family names and first names of people
// born between the 1920s and the 1960s, with their accents.
var (
	familyNames = []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
		"Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
		"Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert",
		"Bonnet", "François", "Martinez", "Légaré", "Chevalier", "Gauthier", "Perrin", "Rousseau", "Blanc",
		"Guérin", "Muller", "Hénault", "Faure", "Mathieu", "Clément", "Gérard", "Noël", "Rivière", "Brunet",
		"Lemaître", "Jouffre", "Périer", "Besançon", "D'Arcy", "Le Goff", "Saint-Martin", "Da Silva",
		"N'Diaye", "Benoît", "Lefèvre-Utile", "De la Fontaine", "Évrard", "Œillet", "Ménard", "Féraud"}
	womenNames = []string{"Marie", "Jeanne", "Françoise", "Monique", "Catherine", "Nicole", "Jacqueline",
		"Anne", "Sylvie", "Isabelle", "Christiane", "Hélène", "Geneviève", "Thérèse", "Élise", "Odette",
		"Paulette", "Simone", "Colette", "Renée", "Andrée", "Gisèle", "Josette", "Marie-Thérèse", "Léonie",
		"Bernadette", "Solange", "Raymonde", "Céline", "Agnès"}
	menNames = []string{"Jean", "Pierre", "Michel", "André", "Philippe", "René", "Louis", "Alain", "Jacques",
		"Bernard", "Marcel", "Daniel", "Roger", "Robert", "Paul", "Claude", "Christian", "Henri", "Georges",
		"Gérard", "Noël", "Jean-Pierre", "Jean-Claude", "François", "Raymond", "Lucien", "Émile", "Joël",
		"Hervé", "Benoît"}
	// Birth places: INSEE codes of large communes and of the countries
	// most French residents born abroad come from.
	communes  = []string{"75056", "13055", "69123", "31555", "06088", "44109", "67482", "34172", "33063", "59350", "94028", "94081", "2A004", "97411"}
	countries = []string{"99350", "99352", "99351", "99139", "99134", "99127", "99131", "99109"}
)

// GenerateOptions tune Generate.
type GenerateOptions struct {
	Count      int    // number of declarants, about
	Seed       uint64 // the same seed gives the same file
	IncomeYear int    // année des revenus
}

// Generate writes a synthetic reference-data CSV file (the import format):
// couples sharing a foyer, single people, people born abroad and homonyms
// (same birth name, first name, sex and date in another foyer; half of them
// born in the same place, so that matching finds them ambiguous). It
// returns the number of declarants written.
func Generate(w io.Writer, o GenerateOptions) (int, error) {
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	cw := csv.NewWriter(w)
	cw.Comma = ';'
	cw.Write(Columns)
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	birth := func() string {
		y := 1925 + rng.IntN(36)
		m := 1 + rng.IntN(12)
		d := 1 + rng.IntN(28)
		return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	}
	place := func() string {
		if rng.IntN(100) < 10 {
			return pick(countries)
		}
		return pick(communes)
	}
	amount := func(lo, hi int) string { return strconv.Itoa(lo + rng.IntN(hi-lo+1)) }
	maybe := func(pct, lo, hi int) string {
		if rng.IntN(100) < pct {
			return amount(lo, hi)
		}
		return ""
	}
	year := strconv.Itoa(o.IncomeYear)
	type person struct{ sex, name, first, date, place string }
	var previous []person
	n, foyer := 0, 0
	for n < o.Count {
		foyer++
		id := fmt.Sprintf("F%07d", foyer)
		ranks := 1
		if rng.IntN(100) < 55 && n+1 < o.Count {
			ranks = 2
		}
		firstSex := "F"
		if rng.IntN(2) == 0 {
			firstSex = "M"
		}
		for rank := 1; rank <= ranks; rank++ {
			sex := firstSex
			if rank == 2 {
				sex = map[string]string{"F": "M", "M": "F"}[firstSex]
			}
			p := person{sex: sex, name: pick(familyNames), date: birth(), place: place()}
			if sex == "F" {
				p.first = pick(womenNames)
			} else {
				p.first = pick(menNames)
			}
			if rng.IntN(100) < 40 {
				second := pick(womenNames)
				if sex == "M" {
					second = pick(menNames)
				}
				p.first += " " + second
			}
			if len(previous) > 10 && rng.IntN(100) < 3 { // homonym of someone else
				h := previous[rng.IntN(len(previous))]
				p.sex, p.name, p.first, p.date = h.sex, h.name, h.first, h.date
				if rng.IntN(2) == 0 {
					p.place = h.place
				}
			}
			usage := ""
			if rank == 2 || sex == "F" && rng.IntN(3) == 0 {
				usage = pick(familyNames)
			}
			rec := []string{id, strconv.Itoa(rank), p.sex, p.name, usage, p.first, p.date, p.place, year,
				amount(6000, 42000), maybe(8, 2000, 30000), maybe(3, 500, 20000), "", "", ""}
			if rank == 1 {
				rec[12], rec[13], rec[14] = maybe(45, 10, 4000), maybe(10, 50, 2500), maybe(20, 600, 15000)
			}
			if err := cw.Write(rec); err != nil {
				return n, err
			}
			if len(previous) < 5000 {
				previous = append(previous, p)
			}
			n++
		}
	}
	cw.Flush()
	return n, cw.Error()
}
