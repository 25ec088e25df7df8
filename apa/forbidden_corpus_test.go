package apa_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
)

// TestForbiddenDataNoFalsePositive feeds ForbiddenData the ordinary content
// of the request fields — every postal code and commune of the reference
// tables (places/data.tsv) with their names, street numbers and address
// lines, every day from 1900 to 2030 in the usual ways of writing it, phone
// numbers in every French format, alone and next to postal codes, dates
// and each other, and dossier references — and expects nothing forbidden.
// The NIR and IBAN of the other tests are found by structure, key or not;
// this corpus is what keeps the structure from catching ordinary values.
func TestForbiddenDataNoFalsePositive(t *testing.T) {
	n := 0
	check := func(v string) {
		t.Helper()
		n++
		if kind := apa.ForbiddenData(v); kind != "" {
			t.Errorf("ForbiddenData(%q) = %q, want nothing", v, kind)
		}
	}

	// The reference tables: INSEE commune codes, La Poste postal codes and
	// their commune names, as CodeCommune, CodePostal, Commune, Libelle and
	// address lines.
	f, err := os.Open("../places/data.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var postal []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		switch fields[0] {
		case "C":
			check(fields[1])
		case "P":
			code, commune := fields[1], fields[2]
			postal = append(postal, code)
			check(code)
			check(commune)
			check(code + " " + commune)
			check(code + " " + commune + " CEDEX 01")
			check("BP 12 " + code + " " + commune)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(postal) < 30000 {
		t.Fatalf("%d postal codes read from places/data.tsv", len(postal))
	}

	rng := rand.New(rand.NewPCG(19, 2027))
	digits := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }

	// Every day from 1900 to 2030, written as dates are.
	layouts := []string{"2006-01-02", "02/01/2006", "02.01.2006", "02-01-2006", "02 01 2006", "20060102", "02012006",
		"2006 01 02", "2006.01.02"}
	var dates []string
	for d := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() <= 2030; d = d.AddDate(0, 0, 1) {
		for _, l := range layouts {
			s := d.Format(l)
			dates = append(dates, s)
			check(s)
		}
		check(d.Format("2006-01") + "-00")
		check(d.Format("2006") + "-00-00")
	}

	// Phone numbers, French and international formats.
	phone := func() string {
		p := "0" + string(byte('1'+rng.IntN(9))) + digits(8)
		switch rng.IntN(9) {
		case 0:
			return p
		case 1:
			return p[0:2] + " " + p[2:4] + " " + p[4:6] + " " + p[6:8] + " " + p[8:10]
		case 2:
			return p[0:2] + "." + p[2:4] + "." + p[4:6] + "." + p[6:8] + "." + p[8:10]
		case 3:
			return p[0:2] + "-" + p[2:4] + "-" + p[4:6] + "-" + p[6:8] + "-" + p[8:10]
		case 4:
			return "+33 " + p[1:2] + " " + p[2:4] + " " + p[4:6] + " " + p[6:8] + " " + p[8:10]
		case 5:
			return "+33" + p[1:]
		case 6:
			return "0033 " + p[1:2] + " " + p[2:4] + " " + p[4:6] + " " + p[6:8] + " " + p[8:10]
		case 7:
			return "0033" + p[1:]
		default:
			return "+33 (0)" + p[1:2] + " " + p[2:4] + " " + p[4:6] + " " + p[6:8] + " " + p[8:10]
		}
	}
	for range 20000 {
		p, q := phone(), phone()
		check(p)
		check("TEL " + p)
		check(p + " " + q)
		check(p + " / " + q)
		check(pick(postal) + " " + p)
		check(p + " " + pick(postal))
		check(pick(dates) + " " + p)
	}

	// Street numbers, address lines and their combinations with postal
	// codes and dates.
	streets := []string{"RUE DE LA REPUBLIQUE", "AVENUE DU GENERAL DE GAULLE", "PLACE DE L EGLISE", "CHEMIN DES VIGNES",
		"BD VICTOR HUGO", "ALLEE DES TILLEULS", "IMPASSE DU MOULIN", "ROUTE DE PARIS", "LIEU DIT LA FERME"}
	suffixes := []string{"", " BIS", " TER", " B", " A", "B", "A"}
	for num := 1; num <= 3000; num++ {
		s := fmt.Sprint(num)
		check(s + pick(suffixes) + " " + pick(streets))
		check(s + "-" + fmt.Sprint(num+2) + " " + pick(streets))
		check(fmt.Sprintf("APPT %d BAT %s ESC %d ETAGE %d", num, pick([]string{"A", "B", "C", "2A", "2B"}), rng.IntN(9)+1, rng.IntN(20)))
		check(fmt.Sprintf("RESIDENCE LES PINS BAT %d APPT %d", rng.IntN(30)+1, num))
		check(fmt.Sprintf("%d %s %s", num, pick(postal), pick(dates)))
		check(fmt.Sprintf("%d %s %s", num, pick(postal), phone()))
		check(fmt.Sprintf("BP %d %s CEDEX %d", num, pick(postal), rng.IntN(20)+1))
		check(fmt.Sprintf("CS %05d %s", rng.IntN(100000), pick(postal)))
		check(fmt.Sprintf("%s %s %d", pick(postal), pick(postal), num))
	}

	// Dossier references as départements number them.
	for i := 1; i <= 20000; i++ {
		year := 2000 + rng.IntN(31)
		check(fmt.Sprintf("APA-%d-%06d", year, i))
		check(fmt.Sprintf("DOS-%07d", i))
		check(fmt.Sprintf("%d%09d", year, i))
		check(fmt.Sprintf("%d-%06d", year, i))
		check(fmt.Sprintf("%d_%s_%04d", year, pick(postal), i))
	}
	t.Logf("%d ordinary values, none forbidden", n)
}
