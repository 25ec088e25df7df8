package apa

import "bytes"

// Kinds of forbidden data (E007): a request identifies a person by état
// civil and address only, never by NIR nor by bank details (R.* 153 A-1).
const (
	ForbiddenNIR  = "numéro de sécurité sociale (NIR)"
	ForbiddenIBAN = "IBAN"
	ForbiddenBIC  = "BIC"
)

// ForbiddenData returns the kind of forbidden data found in a text value,
// or "" if none:
//
//   - a NIR: 15 characters, sex digit 1, 2, 3, 4, 7 or 8, then 12 digits
//     (2A or 2B allowed as département) and a key equal to
//     97 − (number mod 97), 2A and 2B counting as 19 and 18; spaces, dots
//     and hyphens between the digits are ignored;
//   - an IBAN: country code, 2 check digits and the length of that
//     country, with a valid mod-97 checksum; spaces and hyphens ignored;
//   - a BIC: 8 or 11 letters and digits, [A-Z]{4} bank, a known country,
//     [A-Z0-9]{2} location and an optional branch, that contains a digit
//     or sits next to the word BIC or SWIFT (plain words such as BOULOGNE
//     look like a BIC and must not be refused).
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
	if digits >= 12 && hasNIR(v) {
		return ForbiddenNIR
	}
	if digits >= 8 && letters >= 2 && hasIBAN(v) {
		return ForbiddenIBAN
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

func hasNIR(v []byte) bool {
	var buf [maxText + 1]byte
	b := compact(buf[:0], v, isNIRChar, isNIRSep)
	for i := 0; i+15 <= len(b); i++ {
		if isNIR(b[i : i+15]) {
			return true
		}
	}
	return false
}

// isNIR checks a 15-character candidate.
func isNIR(b []byte) bool {
	switch b[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return false
	}
	n := int64(0)
	for i := 0; i < 13; i++ {
		c := b[i]
		switch {
		case isDigit(c):
			n = n*10 + int64(c-'0')
		case i == 6 && b[5] == '2' && c == 'A':
			n = n/10*100 + 19 // "2A" counts as 19
		case i == 6 && b[5] == '2' && c == 'B':
			n = n/10*100 + 18 // "2B" counts as 18
		default:
			return false
		}
	}
	if !isDigit(b[13]) || !isDigit(b[14]) {
		return false
	}
	key := int64(b[13]-'0')*10 + int64(b[14]-'0')
	return key == 97-n%97
}

// ibanLengths gives the IBAN length of each country of the SWIFT registry.
const ibanLengths = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BR29BY28CH21CR22CY28CZ24DE22DK18DO28EE20EG29ES24" +
	"FI18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21" +
	"LT20LU20LV21LY25MC27MD24ME22MK19MR27MT31MU30NL18NO15PK24PL28PS29PT25QA29RO24RS22SA24SC31" +
	"SD18SE24SI19SK24SM27ST25SV28TL23TN24TR26UA29VA22VG24XK20"

func ibanLength(cc []byte) int {
	for i := 0; i+4 <= len(ibanLengths); i += 4 {
		if ibanLengths[i] == cc[0] && ibanLengths[i+1] == cc[1] {
			return int(ibanLengths[i+2]-'0')*10 + int(ibanLengths[i+3]-'0')
		}
	}
	return 0
}

func hasIBAN(v []byte) bool {
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
			return true
		}
	}
	return false
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
