// Package places holds the official French place references used by the
// record-level checks R102 and R103: INSEE commune codes (current and
// former) and La Poste postal codes with the names they serve. The table is
// generated from npm packages by `go generate ./places` (see gen/) and
// embedded in the binary; nothing here is typed by hand.
package places

//go:generate go run ./gen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pigp/pigp/fiscal"
)

//go:embed data.tsv.gz
var data []byte

// GeneratedAt is the fixed timestamp written into the generated archive so
// that regenerating it from the same packages gives the same bytes.
var GeneratedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Table answers the questions of apa.Places.
type Table struct {
	communes map[string]struct{}
	postal   map[string]map[string]struct{} // postal code → normalised names
}

// Load parses the embedded table.
func Load() (*Table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("places: %w", err)
	}
	t := &Table{communes: map[string]struct{}{}, postal: map[string]map[string]struct{}{}}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		parts := strings.Split(line, "\t")
		switch {
		case parts[0] == "C" && len(parts) == 2:
			t.communes[parts[1]] = struct{}{}
		case parts[0] == "P" && len(parts) == 3:
			if t.postal[parts[1]] == nil {
				t.postal[parts[1]] = map[string]struct{}{}
			}
			t.postal[parts[1]][parts[2]] = struct{}{}
		default:
			return nil, fmt.Errorf("places: bad line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("places: %w", err)
	}
	return t, nil
}

// Communes returns the number of known commune codes.
func (t *Table) Communes() int { return len(t.communes) }

// KnownCommune reports whether code is an INSEE commune code, current or former.
func (t *Table) KnownCommune(code string) bool {
	_, ok := t.communes[code]
	return ok
}

// KnownCountry reports whether code is an INSEE code of a foreign country or
// territory: 99 followed by a zone digit from 1 (Europe) to 5 (Oceania) and
// two digits, France itself (99100) excluded. No package of the registries
// this project uses publishes the COG country list, so this is a check of
// the code's structure, not of a list.
func (t *Table) KnownCountry(code string) bool {
	if len(code) != 5 || !strings.HasPrefix(code, "99") || code == "99100" {
		return false
	}
	n, err := strconv.Atoi(code[2:])
	return err == nil && n >= 101 && n <= 599
}

// PostalCodeMatches reports whether postalCode serves the commune named as
// written in an address (accents, case, hyphens and "Saint"/"St" ignored).
func (t *Table) PostalCodeMatches(postalCode, commune string) bool {
	names, ok := t.postal[postalCode]
	if !ok {
		return false
	}
	key := fiscal.NormalizeName(commune)
	key = strings.TrimSpace(strings.TrimSuffix(key, " CEDEX"))
	for _, v := range NameVariants(key) {
		if _, ok := names[v]; ok {
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
