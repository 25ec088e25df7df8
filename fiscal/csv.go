package fiscal

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pigp/pigp"
)

// Columns of the reference-data CSV file, in order. See docs/referentiel.md.
var Columns = []string{"foyer", "rang", "sexe", "nom_naissance", "nom_usage", "prenoms", "date_naissance",
	"lieu_naissance", "annee_revenus", "tspr", "bns", "pvm", "rcm", "rcm_pfl", "rf"}

// individual resource columns go to the declarant (D1/D2); foyer-level
// ones to the whole foyer and may only be given on the rank 1 row.
var resourceColumns = []struct {
	col      int
	category string
	foyer    bool
}{{9, pigp.CatTSPR, false}, {10, pigp.CatBNS, false}, {11, pigp.CatPVM, false},
	{12, pigp.CatRCM, true}, {13, pigp.CatRCMPFL, true}, {14, pigp.CatRF, true}}

// LineError is a CSV error at a given line.
type LineError struct {
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("ligne %d : %s", e.Line, e.Msg) }

var (
	foyerRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	placeRE = regexp.MustCompile(`^([0-9]{5}|2[AB][0-9]{3})$`)
	dateRE  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// Data is the content of a reference-data file: each declarant once, and
// the resources.
type Data struct {
	Persons   []pigp.Person
	Resources []pigp.Resource
}

// ReadCSV reads a reference-data file. It checks every line and returns the
// first error with its line number; nothing is returned on error, so that
// an import is all or nothing. progress, if not nil, is called with the
// number of bytes read so far.
func ReadCSV(r io.Reader, progress func(n int64)) (*Data, error) {
	cr := &countingReader{r: r}
	rd := csv.NewReader(cr)
	rd.Comma = ';'
	rd.FieldsPerRecord = len(Columns)
	rd.ReuseRecord = true
	header, err := rd.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LineError{1, "fichier vide : la ligne d'en-tête est attendue"}
		}
		return nil, csvError(err)
	}
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	if strings.Join(header, ";") != strings.Join(Columns, ";") {
		return nil, &LineError{1, "en-tête attendu : " + strings.Join(Columns, ";")}
	}
	d := &Data{}
	persons := map[string]int{} // foyer/rang → index in d.Persons
	seenRes := map[string]int{} // foyer/year/category/beneficiary → line
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := rd.FieldPos(0)
		p, year, err := parsePerson(rec)
		if err != nil {
			return nil, &LineError{line, err.Error()}
		}
		key := p.FoyerID + "/" + strconv.Itoa(p.Rank)
		if i, ok := persons[key]; ok {
			if d.Persons[i] != p {
				return nil, &LineError{line, "le déclarant " + key + " est déjà décrit autrement plus haut"}
			}
		} else {
			persons[key] = len(d.Persons)
			d.Persons = append(d.Persons, p)
		}
		for _, rc := range resourceColumns {
			v := strings.TrimSpace(rec[rc.col])
			if v == "" {
				continue
			}
			amount, err := strconv.ParseInt(v, 10, 64)
			if err != nil || amount < 0 {
				return nil, &LineError{line, fmt.Sprintf("colonne %s : montant entier positif en euros attendu", Columns[rc.col])}
			}
			ben := "D" + strconv.Itoa(p.Rank)
			if rc.foyer {
				if p.Rank != 1 {
					return nil, &LineError{line, fmt.Sprintf("colonne %s : revenu du foyer, à porter sur la ligne du déclarant 1", Columns[rc.col])}
				}
				ben = pigp.BenFoyer
			}
			rkey := fmt.Sprintf("%s/%d/%s/%s", p.FoyerID, year, rc.category, ben)
			if prev, ok := seenRes[rkey]; ok {
				return nil, &LineError{line, fmt.Sprintf("colonne %s : montant déjà donné ligne %d pour ce foyer et cette année", Columns[rc.col], prev)}
			}
			seenRes[rkey] = line
			d.Resources = append(d.Resources, pigp.Resource{FoyerID: p.FoyerID, Year: year, Category: rc.category, Beneficiary: ben, Amount: amount})
		}
		if progress != nil {
			progress(cr.n)
		}
	}
	return d, nil
}

func parsePerson(rec []string) (pigp.Person, int, error) {
	f := func(i int) string { return strings.TrimSpace(rec[i]) }
	p := pigp.Person{FoyerID: f(0), Sex: f(2), BirthName: f(3), UsageName: f(4), FirstNames: f(5), BirthDate: f(6), BirthPlace: f(7)}
	if !foyerRE.MatchString(p.FoyerID) {
		return p, 0, errors.New("colonne foyer : identifiant de 1 à 32 caractères parmi A-Z, a-z, 0-9, _ et - attendu")
	}
	switch f(1) {
	case "1":
		p.Rank = 1
	case "2":
		p.Rank = 2
	default:
		return p, 0, errors.New("colonne rang : 1 ou 2 attendu")
	}
	if p.Sex != "M" && p.Sex != "F" {
		return p, 0, errors.New("colonne sexe : M ou F attendu")
	}
	if p.BirthName == "" || len([]rune(p.BirthName)) > 80 {
		return p, 0, errors.New("colonne nom_naissance : de 1 à 80 caractères")
	}
	if len([]rune(p.UsageName)) > 80 {
		return p, 0, errors.New("colonne nom_usage : 80 caractères au plus")
	}
	if p.FirstNames == "" || len([]rune(p.FirstNames)) > 100 {
		return p, 0, errors.New("colonne prenoms : de 1 à 100 caractères")
	}
	if !validBirthDate(p.BirthDate) {
		return p, 0, errors.New("colonne date_naissance : date AAAA-MM-JJ attendue (00 admis pour un mois ou un jour inconnu)")
	}
	if !placeRE.MatchString(p.BirthPlace) {
		return p, 0, errors.New("colonne lieu_naissance : code commune INSEE ou code pays 99xxx attendu")
	}
	year, err := strconv.Atoi(f(8))
	if err != nil || year < 1990 || year > 2100 {
		return p, 0, errors.New("colonne annee_revenus : année sur 4 chiffres attendue")
	}
	p.NameKey = NormalizeName(p.BirthName)
	p.FirstNameKey = FirstFirstName(p.FirstNames)
	if p.NameKey == "" || p.FirstNameKey == "" {
		return p, 0, errors.New("colonnes nom_naissance et prenoms : des lettres sont attendues")
	}
	return p, year, nil
}

// validBirthDate accepts AAAA-MM-JJ, with 00 for an unknown month or day.
func validBirthDate(s string) bool {
	if !dateRE.MatchString(s) {
		return false
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	if y < 1850 || m > 12 || (m == 0 && d != 0) {
		return false
	}
	if m == 0 || d == 0 {
		return true
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	return t.Month() == time.Month(m) && t.Day() == d
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = fmt.Sprintf("%d colonnes séparées par « ; » attendues", len(Columns))
		} else if errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote) {
			msg = "guillemets mal placés"
		}
		return &LineError{pe.Line, msg}
	}
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
