package apa

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeName returns a name as matching compares it (§6): upper case,
// accents removed, ligatures spelt out (Œ → OE, Æ → AE, ß → SS), and runs of
// spaces, hyphens and apostrophes folded to one space, trimmed.
func NormalizeName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == ' ' || r == '-' || r == '\'' || r == '\u2019' || r == '\u02bc' || r == '\u2010' || r == '\u2011' ||
			r == '\u00a0' || r == '\t' || r == '\n' || r == '\r':
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		switch r {
		case 'Œ', 'œ':
			b.WriteString("OE")
		case 'Æ', 'æ':
			b.WriteString("AE")
		case 'ß':
			b.WriteString("SS")
		case 'Ø', 'ø':
			b.WriteByte('O')
		case 'Đ', 'đ':
			b.WriteByte('D')
		case 'Ł', 'ł':
			b.WriteByte('L')
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}
