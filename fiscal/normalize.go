// Package fiscal holds the fiscal reference data's rules: the name
// normalisation and matching of the contract (§6), the CSV import format
// and a synthetic data generator for demos and tests.
package fiscal

import (
	"strings"

	"github.com/pigp/pigp/apa"
)

// NormalizeName applies the contract's normalisation (§6); it is
// apa.NormalizeName, the one implementation shared with the validator.
func NormalizeName(s string) string { return apa.NormalizeName(s) }

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
