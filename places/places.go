// Package places holds the official French place references used by the
// record-level checks R102 and R103: INSEE commune codes (current and
// former) and La Poste postal codes with the names they serve. The table is
// generated from npm packages by `go generate ./places` (see gen/) and
// embedded in the binary; nothing here is typed by hand.
package places

//go:generate go run ./gen

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/pigp/pigp/fiscal"
)

//go:embed data.tsv
var data string

// Table answers the questions of apa.Places. It reads the embedded table in
// place: sorted lines "C\t<commune code>" and "P\t<postal code>\t<name>",
// looked up by binary search, so that the table costs no heap (a few hundred
// kilobytes of the binary are paged in as lookups touch them). Lines
// "K\t<country code>" are there when INSEE's country files were given to
// the generator (see gen/pays.go).
type Table struct {
	lines     string // the sorted lines, header removed
	communes  int
	countries int
}

// Load checks the embedded table: its lines are well formed and strictly
// increasing, which the lookups rely on.
func Load() (*Table, error) {
	return Parse(data)
}

// Parse reads a table in the format of the embedded one (the generator
// checks its output with it).
func Parse(text string) (*Table, error) {
	if strings.HasPrefix(text, "#") {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			return nil, fmt.Errorf("places: table without data")
		}
		text = text[i+1:]
	}
	if text == "" || text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("places: table must end with a newline")
	}
	t := &Table{lines: text}
	prev := ""
	for n, rest := 1, text; rest != ""; n++ {
		i := strings.IndexByte(rest, '\n')
		line := rest[:i]
		rest = rest[i+1:]
		switch f := strings.Split(line, "\t"); {
		case f[0] == "C" && len(f) == 2 && len(f[1]) == 5:
			t.communes++
		case f[0] == "K" && len(f) == 2 && len(f[1]) == 5 && strings.HasPrefix(f[1], "99") && f[1] != "99100":
			t.countries++
		case f[0] == "P" && len(f) == 3 && len(f[1]) == 5 && f[2] != "":
		default:
			return nil, fmt.Errorf("places: line %d: bad line %q", n, line)
		}
		if line <= prev {
			return nil, fmt.Errorf("places: line %d: %q is not after %q", n, line, prev)
		}
		prev = line
	}
	return t, nil
}

// has reports whether line is one of the table's lines.
func (t *Table) has(line string) bool {
	lo, hi := 0, len(t.lines) // both always at the start of a line
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := strings.LastIndexByte(t.lines[:mid], '\n') + 1
		end := start + strings.IndexByte(t.lines[start:], '\n')
		switch c := strings.Compare(t.lines[start:end], line); {
		case c == 0:
			return true
		case c < 0:
			lo = end + 1
		default:
			hi = start
		}
	}
	return false
}

// Communes returns the number of known commune codes.
func (t *Table) Communes() int { return t.communes }

// KnownCommune reports whether code is an INSEE commune code, current or former.
func (t *Table) KnownCommune(code string) bool {
	return len(code) == 5 && t.has("C\t"+code)
}

// Countries returns the number of country codes of the table: 0 when it was
// generated without INSEE's country files.
func (t *Table) Countries() int { return t.countries }

// KnownCountry reports whether code is an INSEE code of a foreign country or
// territory, France itself (99100) excluded: one of INSEE's list when the
// table has it, otherwise any code of the list's structure (99, a zone digit
// from 1, Europe, to 5, Oceania, and two digits). The registries this
// project's table is generated from do not publish INSEE's country list;
// gen/pays.go takes its files when they are downloaded from INSEE.
func (t *Table) KnownCountry(code string) bool {
	if len(code) != 5 || !strings.HasPrefix(code, "99") || code == "99100" {
		return false
	}
	if t.countries > 0 {
		return t.has("K\t" + code)
	}
	n, err := strconv.Atoi(code[2:])
	return err == nil && n >= 101 && n <= 599
}

// PostalCodeMatches reports whether postalCode serves the commune named as
// written in an address (accents, case, hyphens and "Saint"/"St" ignored).
func (t *Table) PostalCodeMatches(postalCode, commune string) bool {
	if len(postalCode) != 5 {
		return false
	}
	key := fiscal.NormalizeName(commune)
	key = strings.TrimSpace(strings.TrimSuffix(key, " CEDEX"))
	for _, v := range NameVariants(key) {
		if t.has("P\t" + postalCode + "\t" + v) {
			return true
		}
	}
	return false
}

// NameVariants returns a normalised commune name with its common spellings:
// SAINT/ST and SAINTE/STE as whole words.
func NameVariants(name string) []string {
	words := strings.Fields(name)
	long := make([]string, len(words))
	short := make([]string, len(words))
	for i, w := range words {
		long[i], short[i] = w, w
		switch w {
		case "ST":
			long[i] = "SAINT"
		case "STE":
			long[i] = "SAINTE"
		case "SAINT":
			short[i] = "ST"
		case "SAINTE":
			short[i] = "STE"
		}
	}
	a, b := strings.Join(long, " "), strings.Join(short, " ")
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}
