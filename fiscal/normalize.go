// Package fiscal holds the fiscal reference data's rules: the name
// normalisation and matching of the contract (§6), the CSV import format
// and a synthetic data generator for demos and tests.
package fiscal

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeName applies the contract's normalisation (§6): upper case,
// accents removed, runs of spaces, hyphens and apostrophes folded to one
// space, no space at either end. Ligatures æ and œ become AE and OE.
func NormalizeName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r): // combining accent
			continue
		case r == ' ' || r == '-' || r == '\'' || r == '\u2019' || r == '\u2010' || r == '\u2011' ||
			r == '\u00a0' || r == '\t' || r == '\u02bc':
			pendingSpace = b.Len() > 0
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		switch r {
		case 'æ', 'Æ':
			b.WriteString("AE")
		case 'œ', 'Œ':
			b.WriteString("OE")
		case 'ß':
			b.WriteString("SS")
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// FirstFirstName returns the normalised first of several first names
// separated by spaces ("Jean-Pierre Marie" gives "JEAN PIERRE").
func FirstFirstName(prenoms string) string {
	fields := strings.Fields(prenoms)
	if len(fields) == 0 {
		return ""
	}
	return NormalizeName(fields[0])
}

// BirthDateMatches reports whether the requested birth date (AAAA-MM-JJ,
// "00" for an unknown month or day) matches a known one; an unknown part on
// either side matches any value.
func BirthDateMatches(requested, known string) bool {
	if len(requested) != 10 || len(known) != 10 {
		return false
	}
	if requested[:4] != known[:4] {
		return false
	}
	for _, part := range [][2]int{{5, 7}, {8, 10}} {
		r, k := requested[part[0]:part[1]], known[part[0]:part[1]]
		if r != "00" && k != "00" && r != k {
			return false
		}
	}
	return true
}
