package apa

import (
	"math"
	"unicode/utf8"
)

// This file mirrors xsd/DemandeAPA.xsd: the content models of the complex
// types and the facets of the simple types. schema_test.go checks that both
// agree on the test corpus.

// field identifies a simple element whose value the validator keeps.
type field uint8

const (
	fNone field = iota
	fCampagne
	fSiret
	fDateCreation
	fCourriel
	fEmetteurNom
	fEmetteurPrenom
	fNombre
	fReference
	fSexe
	fNomNaissance
	fNomUsage
	fPrenoms
	fDateNaissance
	fCodeCommune
	fCodePays
	fLibelle
	fLigne1
	fLigne2
	fLigne3
	fCodePostal
	fCommune
	nFields
)

// coded reports whether the field holds a code or a number of fixed format
// (a SIRET, a date, a postal code…) rather than free text: such a value of
// the wrong length is a mistyped code (E003), and is refused as a NIR or
// an IBAN only when its check key proves it is one.
func (f field) coded() bool {
	switch f {
	case fCampagne, fSiret, fDateCreation, fNombre, fSexe, fDateNaissance, fCodeCommune, fCodePays, fCodePostal:
		return true
	}
	return false
}

// elem is an element declaration. A simple element has a check and no
// content; a complex one has a content model.
type elem struct {
	name    string
	field   field
	check   func([]byte) bool
	want    string // French description of a valid value
	content []particle
}

// particle is one item of an xs:sequence: an element or, with several
// elements, an xs:choice. max < 0 means unbounded.
type particle struct {
	elems    []*elem
	min, max int
}

func (p *particle) match(name []byte) *elem {
	for _, e := range p.elems {
		if e.name == string(name) {
			return e
		}
	}
	return nil
}

// label names the particle for a message: "Sexe" or "CodeCommune ou CodePays".
func (p *particle) label() string {
	s := p.elems[0].name
	for _, e := range p.elems[1:] {
		s += " ou " + e.name
	}
	return s
}

func simple(name string, f field, check func([]byte) bool, want string) *elem {
	return &elem{name: name, field: f, check: check, want: want}
}

func complexElem(name string, content ...particle) *elem {
	return &elem{name: name, content: content}
}

func one(e ...*elem) particle          { return particle{elems: e, min: 1, max: 1} }
func optional(e *elem) particle        { return particle{elems: []*elem{e}, min: 0, max: 1} }
func repeated(e *elem) particle        { return particle{elems: []*elem{e}, min: 1, max: -1} }
func maxChars(n int) func([]byte) bool { return func(v []byte) bool { return lengthIn(v, 1, n) } }

// Names of the elements the validator treats specially.
const (
	rootName    = "DemandeAPA"
	enteteName  = "Entete"
	demandeName = "Demande"
)

// requestModel returns the element tree of DemandeAPA.xsd. Demande is
// unbounded here: the 100 000 limit is reported as E006, not E003.
func requestModel() *elem {
	const nameWant8 = "de 1 à 80 caractères parmi lettres (accents admis), espace, apostrophe et tiret"
	entete := complexElem(enteteName,
		one(simple("Campagne", fCampagne, isCampagne, "une année sur 4 chiffres")),
		one(simple("SiretDeposant", fSiret, isSIRETPattern, "14 chiffres")),
		one(simple("DateCreation", fDateCreation, isLocalDateTime, "une date et heure AAAA-MM-JJThh:mm:ss, sans fuseau horaire")),
		one(simple("CourrielContact", fCourriel, isEmail, "une adresse électronique d'au plus 254 caractères")),
		one(complexElem("Emetteur",
			one(simple("Nom", fEmetteurNom, maxChars(80), "de 1 à 80 caractères")),
			one(simple("Prenom", fEmetteurPrenom, maxChars(80), "de 1 à 80 caractères")),
		)),
		one(simple("NombreDemandes", fNombre, isPositiveInteger, "un entier strictement positif")),
	)
	lieu := complexElem("LieuNaissance",
		one(simple("CodeCommune", fCodeCommune, isCodeCommune, "un code commune INSEE : 5 chiffres, ou 2A ou 2B suivi de 3 chiffres"),
			simple("CodePays", fCodePays, isCodePays, "un code pays INSEE 99xxx")),
		optional(simple("Libelle", fLibelle, maxChars(60), "de 1 à 60 caractères")),
	)
	adresse := complexElem("Adresse",
		one(simple("Ligne1", fLigne1, maxChars(38), "de 1 à 38 caractères")),
		optional(simple("Ligne2", fLigne2, maxChars(38), "de 1 à 38 caractères")),
		optional(simple("Ligne3", fLigne3, maxChars(38), "de 1 à 38 caractères")),
		one(simple("CodePostal", fCodePostal, isCodePostal, "5 chiffres")),
		one(simple("Commune", fCommune, maxChars(45), "de 1 à 45 caractères")),
	)
	demande := complexElem(demandeName,
		one(simple("ReferenceDossier", fReference, isReference, "de 1 à 30 caractères parmi A-Z, a-z, 0-9, « _ » et « - »")),
		one(simple("Sexe", fSexe, isSexe, "M ou F")),
		one(simple("NomNaissance", fNomNaissance, isName80, nameWant8)),
		optional(simple("NomUsage", fNomUsage, isName80, nameWant8)),
		one(simple("Prenoms", fPrenoms, isName100, "de 1 à 100 caractères parmi lettres (accents admis), espace, apostrophe et tiret")),
		one(simple("DateNaissance", fDateNaissance, isBirthDatePattern, "une date AAAA-MM-JJ (« 00 » admis pour un mois ou un jour inconnu)")),
		one(lieu),
		one(adresse),
	)
	return complexElem(rootName, one(entete), repeated(demande))
}

// lengthIn reports whether v has between lo and hi characters.
func lengthIn(v []byte, lo, hi int) bool {
	if len(v) < lo {
		return false
	}
	n := utf8.RuneCount(v)
	return n >= lo && n <= hi
}

func digitsOnly(v []byte) bool {
	for _, c := range v {
		if !isDigit(c) {
			return false
		}
	}
	return len(v) > 0
}

func isCampagne(v []byte) bool     { return len(v) == 4 && digitsOnly(v) }
func isSIRETPattern(v []byte) bool { return len(v) == 14 && digitsOnly(v) }
func isCodePostal(v []byte) bool   { return len(v) == 5 && digitsOnly(v) }
func isSexe(v []byte) bool         { return len(v) == 1 && (v[0] == 'M' || v[0] == 'F') }
func isName80(v []byte) bool       { return isName(v, 80) }
func isName100(v []byte) bool      { return isName(v, 100) }

func isCodeCommune(v []byte) bool {
	if len(v) != 5 {
		return false
	}
	if v[0] == '2' && (v[1] == 'A' || v[1] == 'B') {
		return digitsOnly(v[2:])
	}
	return digitsOnly(v)
}

func isCodePays(v []byte) bool {
	return len(v) == 5 && v[0] == '9' && v[1] == '9' && digitsOnly(v[2:])
}

// isReference: [A-Za-z0-9_\-]{1,30}.
func isReference(v []byte) bool {
	if len(v) < 1 || len(v) > 30 {
		return false
	}
	for _, c := range v {
		if !isASCIILetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// isName: 1..n of [A-Za-zÀ-ÖØ-öø-ſ '’-].
func isName(v []byte, n int) bool {
	count := 0
	for _, r := range string(v) {
		count++
		if count > n || !isNameChar(r) {
			return false
		}
	}
	return count >= 1
}

func isNameChar(r rune) bool {
	switch {
	case r < 0x80:
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == ' ' || r == '\'' || r == '-'
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x17F, r == 0x2019:
		return true
	}
	return false
}

// isBirthDatePattern: [0-9]{4}-(0[0-9]|1[0-2])-(0[0-9]|[12][0-9]|3[01]).
func isBirthDatePattern(v []byte) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' || !digitsOnly(v[:4]) || !digitsOnly(v[5:7]) || !digitsOnly(v[8:]) {
		return false
	}
	m := int(v[5]-'0')*10 + int(v[6]-'0')
	d := int(v[8]-'0')*10 + int(v[9]-'0')
	return m <= 12 && d <= 31
}

// trimSpace removes XML white space around v (whiteSpace="collapse" types).
func trimSpace(v []byte) []byte {
	for len(v) > 0 && isSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// isLocalDateTime: an xs:dateTime restricted to the pattern
// [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}. As in XSD 1.0, year
// 0000 is invalid and 24:00:00 is valid.
func isLocalDateTime(v []byte) bool {
	_, ok := parseLocalDateTime(v)
	return ok
}

// dateTimeParts holds the fields of a local date-time.
type dateTimeParts struct{ year, month, day, hour, min, sec int }

func parseLocalDateTime(v []byte) (dateTimeParts, bool) {
	var t dateTimeParts
	v = trimSpace(v)
	if len(v) != 19 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' {
		return t, false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if !isDigit(v[i]) {
			return t, false
		}
	}
	num := func(i, j int) int {
		n := 0
		for _, c := range v[i:j] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	t = dateTimeParts{num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)}
	switch {
	case t.year == 0, t.month < 1, t.month > 12, t.day < 1, t.day > daysIn(t.month, t.year),
		t.min > 59, t.sec > 59, t.hour > 24, t.hour == 24 && (t.min != 0 || t.sec != 0):
		return t, false
	}
	return t, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isPositiveInteger: the lexical space of xs:positiveInteger.
func isPositiveInteger(v []byte) bool {
	_, ok := parsePositiveInteger(v)
	return ok
}

// parsePositiveInteger returns the value of an xs:positiveInteger,
// saturated at math.MaxInt (more than any file can hold).
func parsePositiveInteger(v []byte) (int, bool) {
	v = trimSpace(v)
	if len(v) > 0 && v[0] == '+' {
		v = v[1:]
	}
	if !digitsOnly(v) {
		return 0, false
	}
	n := 0
	for _, c := range v {
		d := int(c - '0')
		if n > (math.MaxInt-d)/10 {
			return math.MaxInt, true
		}
		n = n*10 + d
	}
	return n, n > 0
}

// isEmail: at most 254 characters matching
// [A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+.
func isEmail(v []byte) bool {
	if len(v) > 254 { // all allowed characters are ASCII
		return false
	}
	at := -1
	for i, c := range v {
		if c == '@' {
			at = i
			break
		}
		if !isASCIILetter(c) && !isDigit(c) && !isEmailSpecial(c) {
			return false
		}
	}
	if at < 1 {
		return false
	}
	labels, n := 0, 0
	for _, c := range v[at+1:] {
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			labels++
			n = 0
		case isASCIILetter(c) || isDigit(c) || c == '-':
			n++
		default:
			return false
		}
	}
	return n > 0 && labels >= 1
}

func isEmailSpecial(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '/', '=', '?', '^', '_', '`', '{', '|', '}', '~', '.', '-':
		return true
	}
	return false
}
