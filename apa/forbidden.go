package apa

import "bytes"

// Kinds of forbidden data (E007): a request identifies a person by état
// civil and address only, never by NIR nor by bank details (R.* 153 A-1).
// A mistyped NIR or IBAN is still one: the structure decides, and a wrong
// or missing check key only changes the label.
const (
	ForbiddenNIR        = "numéro de sécurité sociale (NIR)"
	ForbiddenNIRBadKey  = "numéro de sécurité sociale (NIR), clé de contrôle absente ou erronée"
	ForbiddenIBAN       = "IBAN"
	ForbiddenIBANBadKey = "IBAN, clé de contrôle erronée"
	ForbiddenBIC        = "BIC"
)

// ForbiddenData returns the kind of forbidden data found in a text value,
// or "" if none:
//
//   - a NIR: a number of 13 characters (without its key) or 15 (with it),
//     written alone, shaped as a NIR: sex digit 1, 2, 3, 4, 7 or 8, year,
//     month 01–12, 20, 30–42 or 50–99, département 01–99, 2A or 2B,
//     commune and order number not 000; when spaces, dots or hyphens split
//     it, the groups end where the NIR's fields end and the first is the
//     sex digit alone or the 13 characters before the key
//     (1 38 05 94 028 123 45, 1380594028123 45).
//     The key, 97 − (number mod 97) with 2A and 2B counting as 19 and 18,
//     only chooses the label. A 15-character run with a valid key is also
//     found inside a longer number;
//   - an IBAN: country code, 2 check digits and that country's BBAN format
//     and length, starting a word and ending one (spaces and hyphens may
//     group it); with a valid mod-97 checksum it is found anywhere, and the
//     checksum only chooses the label;
//   - a BIC: 8 or 11 letters and digits, [A-Z]{4} bank, a known country,
//     [A-Z0-9]{2} location and an optional branch, that contains a digit
//     or sits next to the word BIC or SWIFT (plain words such as BOULOGNE
//     look like a BIC and must not be refused). A BIC has no check key.
func ForbiddenData(v string) string { return forbiddenData([]byte(v)) }

func forbiddenData(v []byte) string {
	digits, letters := 0, 0
	for _, c := range v {
		switch {
		case isDigit(c):
			digits++
		case isASCIILetter(c):
			letters++
		}
	}
	if digits >= 11 {
		if found, keyOK := hasNIR(v); found {
			if keyOK {
				return ForbiddenNIR
			}
			return ForbiddenNIRBadKey
		}
	}
	if digits >= 8 && letters >= 2 {
		if found, keyOK := hasIBAN(v); found {
			if keyOK {
				return ForbiddenIBAN
			}
			return ForbiddenIBANBadKey
		}
	}
	if letters >= 6 && hasBIC(v) {
		return ForbiddenBIC
	}
	return ""
}

// compact copies into dst the upper-cased characters of v accepted by keep,
// dropping the separators accepted by sep that sit inside a run, and
// marking the end of each run with a 0 byte.
func compact(dst, v []byte, keep, sep func(byte) bool) []byte {
	inRun := false
	for _, c := range v {
		switch {
		case keep(c):
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			inRun = true
		case sep(c) && inRun:
		case inRun:
			dst = append(dst, 0)
			inRun = false
		}
	}
	return append(dst, 0)
}

func isNIRChar(c byte) bool    { return isDigit(c) || c == 'A' || c == 'B' || c == 'a' || c == 'b' }
func isNIRSep(c byte) bool     { return c == ' ' || c == '.' || c == '-' }
func isAlnum(c byte) bool      { return isDigit(c) || isASCIILetter(c) }
func isIBANSep(c byte) bool    { return c == ' ' || c == '-' }
func isUpperASCII(c byte) bool { return c >= 'A' && c <= 'Z' }

// nirRun is one run of NIR characters of a value: the characters without
// separators, and where each group (between separators) ends.
type nirRun struct {
	b    []byte
	ends []int
}

// nirRuns splits v into runs of digits (and A/B) joined by spaces, dots or
// hyphens.
func nirRuns(v []byte, f func(r *nirRun) bool) bool {
	var buf [maxText + 1]byte
	var ends [maxText/2 + 1]int
	r := nirRun{b: buf[:0], ends: ends[:0]}
	flush := func() bool {
		if len(r.b) == 0 {
			return false
		}
		r.ends = append(r.ends, len(r.b))
		found := f(&r)
		r.b, r.ends = r.b[:0], r.ends[:0]
		return found
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case isNIRChar(c):
			if c >= 'a' {
				c -= 'a' - 'A'
			}
			r.b = append(r.b, c)
		case isNIRSep(c) && len(r.b) > 0 && i+1 < len(v) && isNIRChar(v[i+1]):
			if n := len(r.ends); n == 0 || r.ends[n-1] != len(r.b) {
				r.ends = append(r.ends, len(r.b))
			}
		default:
			if flush() {
				return true
			}
		}
	}
	return flush()
}

// nirBoundaries are the ends of the NIR's fields: sex, year, month,
// département, commune, order number, key.
var nirBoundaries = [...]bool{1: true, 3: true, 5: true, 7: true, 10: true, 13: true, 15: true}

// hasNIR looks for a NIR; keyOK tells whether its key is present and right.
func hasNIR(v []byte) (found, keyOK bool) {
	nirRuns(v, func(r *nirRun) bool {
		grouped := len(r.ends) > 1
		for i := 0; i+13 <= len(r.b); i++ {
			for _, n := range [...]int{15, 13} {
				if i+n > len(r.b) || !nirShape(r.b[i:i+n]) {
					continue
				}
				withKey := n == 15 && nirKeyOK(r.b[i:i+n])
				var whole bool
				if grouped {
					whole = r.groupedLike(i, i+n)
				} else {
					whole = i == 0 && n == len(r.b)
				}
				// A NIR written alone (key or not), or one with its right
				// key inside a longer number.
				if whole || withKey && !grouped {
					found, keyOK = true, keyOK || withKey
					if keyOK {
						return true
					}
				}
			}
		}
		return false
	})
	return found, keyOK
}

// groupedLike reports whether b[from:to] of a run split by separators is
// written as people write a NIR: whole groups that end where the NIR's
// fields end, the first being the sex digit alone or the 13 characters
// before the key (1 38 05 94 028 123 45, 1380594028123 45). Postal codes,
// dates and phone numbers run together start otherwise.
func (r *nirRun) groupedLike(from, to int) bool {
	startOK, endOK, first := from == 0, false, true
	for _, e := range r.ends {
		switch {
		case e == from:
			startOK = true
		case e > from && e < to:
			if !nirBoundaries[e-from] || first && e-from != 1 && e-from != 13 {
				return false
			}
			first = false
		case e == to:
			endOK = true
		}
	}
	return startOK && endOK
}

// nirShape checks the 13 characters of a NIR without its key.
func nirShape(b []byte) bool {
	switch b[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return false
	}
	for i, c := range b[:13] {
		if !isDigit(c) && !(i == 6 && b[5] == '2' && (c == 'A' || c == 'B')) {
			return false
		}
	}
	month := int(b[3]-'0')*10 + int(b[4]-'0')
	if !(month >= 1 && month <= 12 || month == 20 || month >= 30 && month <= 42 || month >= 50) {
		return false
	}
	return string(b[5:7]) != "00" && string(b[7:10]) != "000" && string(b[10:13]) != "000"
}

// nirKeyOK checks the key of a 15-character NIR whose first 13 have the
// NIR's shape.
func nirKeyOK(b []byte) bool {
	if !isDigit(b[13]) || !isDigit(b[14]) {
		return false
	}
	n := int64(0)
	for i, c := range b[:13] {
		switch {
		case isDigit(c):
			n = n*10 + int64(c-'0')
		case i == 6 && c == 'A':
			n = n/10*100 + 19 // "2A" counts as 19
		case i == 6 && c == 'B':
			n = n/10*100 + 18 // "2B" counts as 18
		}
	}
	key := int64(b[13]-'0')*10 + int64(b[14]-'0')
	return key == 97-n%97
}

// ibanFormats gives the BBAN format of each country of the SWIFT IBAN
// registry: runs of n digits, a upper-case letters, c letters or digits.
var ibanFormats = map[string]string{
	"AD": "4n4n12c", "AE": "3n16n", "AL": "8n16c", "AT": "5n11n", "AZ": "4a20c", "BA": "3n3n8n2n",
	"BE": "3n7n2n", "BG": "4a4n2n8c", "BH": "4a14c", "BR": "8n5n10n1a1c", "BY": "4c4n16c", "CH": "5n12c",
	"CR": "4n14n", "CY": "3n5n16c", "CZ": "4n6n10n", "DE": "8n10n", "DK": "4n9n1n", "DO": "4c20n",
	"EE": "2n2n11n1n", "EG": "4n4n17n", "ES": "4n4n1n1n10n", "FI": "3n11n", "FO": "4n9n1n", "FR": "5n5n11c2n",
	"GB": "4a6n8n", "GE": "2a16n", "GI": "4a15c", "GL": "4n9n1n", "GR": "3n4n16c", "GT": "4c20c",
	"HR": "7n10n", "HU": "3n4n1n15n1n", "IE": "4a6n8n", "IL": "3n3n13n", "IQ": "4a3n12n", "IS": "4n2n6n10n",
	"IT": "1a5n5n12c", "JO": "4a4n18c", "KW": "4a22c", "KZ": "3n13c", "LB": "4n20c", "LC": "4a24c",
	"LI": "5n12c", "LT": "5n11n", "LU": "3n13c", "LV": "4a13c", "LY": "3n3n15n", "MC": "5n5n11c2n",
	"MD": "2c18c", "ME": "3n13n2n", "MK": "3n10c2n", "MR": "5n5n11n2n", "MT": "4a5n18c", "MU": "4a2n2n12n3n3a",
	"NL": "4a10n", "NO": "4n6n1n", "PK": "4a16c", "PL": "8n16n", "PS": "4a21c", "PT": "4n4n11n2n",
	"QA": "4a21c", "RO": "4a16c", "RS": "3n13n2n", "SA": "2n18c", "SC": "4a2n2n16n3a", "SD": "2n12n",
	"SE": "3n16n1n", "SI": "5n8n2n", "SK": "4n6n10n", "SM": "1a5n5n12c", "ST": "4n4n11n2n", "SV": "4a20n",
	"TL": "3n14n2n", "TN": "2n3n13n2n", "TR": "5n1n16c", "UA": "6n19c", "VA": "3n15n", "VG": "4a16n",
	"XK": "4n10n2n",
}

// ibanLengths gives the IBAN length of each country of the registry.
var ibanLengths = func() map[string]int {
	m := make(map[string]int, len(ibanFormats))
	for cc, f := range ibanFormats {
		n := 4
		for i := 0; i < len(f); {
			k := 0
			for ; isDigit(f[i]); i++ {
				k = k*10 + int(f[i]-'0')
			}
			n += k
			i++
		}
		m[cc] = n
	}
	return m
}()

func ibanLength(cc []byte) int { return ibanLengths[string(cc)] }

// bbanShape checks b (an IBAN's BBAN, upper case) against a format: each
// run of its kind, and at least half digits where letters are allowed (an
// account number, not words).
func bbanShape(b []byte, format string) bool {
	pos, free, freeDigits := 0, 0, 0
	for i := 0; i < len(format); {
		k := 0
		for ; isDigit(format[i]); i++ {
			k = k*10 + int(format[i]-'0')
		}
		kind := format[i]
		i++
		for _, c := range b[pos : pos+k] {
			switch kind {
			case 'n':
				if !isDigit(c) {
					return false
				}
			case 'a':
				if !isUpperASCII(c) {
					return false
				}
			default:
				free++
				if isDigit(c) {
					freeDigits++
				}
			}
		}
		pos += k
	}
	return 2*freeDigits >= free
}

// hasIBAN looks for an IBAN; keyOK tells whether its checksum is right.
func hasIBAN(v []byte) (found, keyOK bool) {
	var buf [maxText + 1]byte
	b := compact(buf[:0], v, isAlnum, isIBANSep)
	for i := 0; i+15 <= len(b); i++ {
		if !isUpperASCII(b[i]) || !isUpperASCII(b[i+1]) || !isDigit(b[i+2]) || !isDigit(b[i+3]) {
			continue
		}
		n := ibanLength(b[i : i+2])
		if n == 0 || i+n > len(b) || bytes.IndexByte(b[i:i+n], 0) >= 0 {
			continue
		}
		if ibanChecksum(b[i : i+n]) {
			return true, true
		}
	}
	// By structure alone: a word that starts like an IBAN and, with the
	// words grouped with it, has exactly the country's length and format.
	for i := 0; i+4 <= len(v); i++ {
		if i > 0 && isAlnum(v[i-1]) {
			continue // not the start of a word
		}
		if !isASCIILetter(v[i]) || !isASCIILetter(v[i+1]) || !isDigit(v[i+2]) || !isDigit(v[i+3]) {
			continue
		}
		cc := string([]byte{v[i] &^ 0x20, v[i+1] &^ 0x20})
		format, ok := ibanFormats[cc]
		if !ok {
			continue
		}
		if cand, ok := ibanWords(v[i:], ibanLengths[cc]); ok {
			check := int(cand[2]-'0')*10 + int(cand[3]-'0')
			if check >= 2 && check <= 98 && bbanShape(cand[4:], format) {
				return true, false
			}
		}
	}
	return false, false
}

// ibanWords gathers, upper-cased, the first n letters and digits of v
// across single spaces and hyphens; ok only if they end a word there.
func ibanWords(v []byte, n int) ([]byte, bool) {
	out := make([]byte, 0, n)
	j := 0
	for ; j < len(v) && len(out) < n; j++ {
		c := v[j]
		switch {
		case isAlnum(c):
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
		case isIBANSep(c) && j+1 < len(v) && isAlnum(v[j+1]):
		default:
			return nil, false
		}
	}
	if len(out) != n || j < len(v) && isAlnum(v[j]) {
		return nil, false
	}
	return out, true
}

// ibanChecksum computes the ISO 13616 mod-97 check over an upper-case IBAN.
func ibanChecksum(b []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return rem == 1
}

// bicCountries lists the ISO 3166 country codes accepted in a BIC: those of
// the IBAN registry and the main others.
const bicCountries = "AUCACNHKINJPKRMAMXNZRUSGUSZA"

func isBICCountry(cc []byte) bool {
	if ibanLength(cc) > 0 {
		return true
	}
	for i := 0; i+2 <= len(bicCountries); i += 2 {
		if bicCountries[i] == cc[0] && bicCountries[i+1] == cc[1] {
			return true
		}
	}
	return false
}

// words calls f on each run of ASCII letters and digits of v until f
// returns true.
func words(v []byte, f func(w []byte) bool) bool {
	for i := 0; i < len(v); {
		if !isAlnum(v[i]) {
			i++
			continue
		}
		j := i
		for j < len(v) && isAlnum(v[j]) {
			j++
		}
		if f(v[i:j]) {
			return true
		}
		i = j
	}
	return false
}

func hasBICKeyword(v []byte) bool {
	return words(v, func(w []byte) bool {
		return bytes.EqualFold(w, []byte("BIC")) || bytes.EqualFold(w, []byte("SWIFT"))
	})
}

// hasBIC looks for a word shaped like a BIC with a known country; it must
// contain a digit or sit next to the word BIC or SWIFT.
func hasBIC(v []byte) bool {
	candidate := false
	found := words(v, func(w []byte) bool {
		if len(w) != 8 && len(w) != 11 {
			return false
		}
		for _, c := range w[:6] {
			if !isASCIILetter(c) {
				return false
			}
		}
		cc := [2]byte{w[4] &^ 0x20, w[5] &^ 0x20}
		if !isBICCountry(cc[:]) {
			return false
		}
		for _, c := range w[6:] {
			if isDigit(c) {
				return true
			}
		}
		candidate = true
		return false
	})
	return found || candidate && hasBICKeyword(v)
}
