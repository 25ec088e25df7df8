package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// countryCode is an INSEE code of a foreign country or territory. France
// (99100) is not one: a birth in France is given by its commune.
var countryCode = regexp.MustCompile(`^99[0-9]{3}$`)

// countryFiles returns the INSEE country files placed in dir (gen/insee/):
// `v_pays_territoire_AAAA.csv` (countries and territories of the year) and
// `v_pays_et_territoire_depuis_1943.csv` (every code since 1943, for people
// born in a country that no longer exists), downloaded from INSEE's page of
// the year's COG (for 2026: https://www.insee.fr/fr/information/8740222).
// None of the registries the table is otherwise generated from publishes
// them, so they are optional: without them places.Table checks country
// codes by their structure.
func countryFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// readCountryCodes returns the foreign-country codes of an INSEE COG
// country file, each once, in the order of the file: the values of the COG
// column (and of any column named COG_…, should a layout split it), with
// 99100 left out. The year's file has one row a country; the historical
// one (COG,CRPAY,LIBCOG,LIBENR,DATE_DEBUT,DATE_FIN) a row per period of a
// code, so codes repeat. Comma, semicolon or tab separators, quoting and a
// UTF-8 byte order mark are accepted, as INSEE's files have had them.
func readCountryCodes(r io.Reader, name string) ([]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	header, _, _ := bytes.Cut(b, []byte("\n"))
	cr := csv.NewReader(bytes.NewReader(b))
	cr.Comma = ','
	for _, sep := range []rune{';', '\t'} {
		if bytes.Count(header, []byte(string(sep))) > bytes.Count(header, []byte(string(cr.Comma))) {
			cr.Comma = sep
		}
	}
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("%s: no data", name)
	}
	var cols []int
	for i, h := range rows[0] {
		h = strings.ToUpper(strings.TrimSpace(h))
		if h == "COG" || strings.HasPrefix(h, "COG_") {
			cols = append(cols, i)
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: no COG column in header %q", name, rows[0])
	}
	seen := map[string]bool{}
	var codes []string
	for n, row := range rows[1:] {
		for _, i := range cols {
			if i >= len(row) {
				continue
			}
			code := strings.TrimSpace(row[i])
			switch {
			case code == "" || code == "99100" || seen[code]:
			case countryCode.MatchString(code):
				seen[code] = true
				codes = append(codes, code)
			default:
				return nil, fmt.Errorf("%s: line %d: %q is not a country code", name, n+2, code)
			}
		}
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("%s: no country code", name)
	}
	return codes, nil
}

// readCountryFiles reads every file and returns the union of their codes.
func readCountryFiles(files []string) (map[string]bool, error) {
	codes := map[string]bool{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		list, err := readCountryCodes(f, filepath.Base(path))
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			codes[c] = true
		}
	}
	return codes, nil
}
