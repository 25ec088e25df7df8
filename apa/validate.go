package apa

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Header is the Entete of a call file. A field whose value was invalid
// stays at its zero value.
type Header struct {
	Campaign        int       // Campagne
	SIRET           string    // SiretDeposant
	Created         time.Time // DateCreation, in Europe/Paris
	Contact         string    // CourrielContact: where to notify the département
	SenderName      string    // Emetteur/Nom
	SenderFirstName string    // Emetteur/Prenom
	Declared        int       // NombreDemandes; math.MaxInt stands for any larger value
}

// Demande is one request record of a call file, with the values as written
// in the file (optional ones "" when absent).
type Demande struct {
	Index     int // 1-based position among the Demande elements
	Line      int // line of the <Demande> tag
	Column    int
	Reference string // ReferenceDossier
	Sex       string // Sexe: M or F
	BirthName string // NomNaissance
	UsageName string // NomUsage
	FirstName string // Prenoms, several separated by spaces
	BirthDate string // DateNaissance: AAAA-MM-JJ, "00" for an unknown month or day
	// Exactly one of BirthCommune and BirthCountry is set.
	BirthCommune string // LieuNaissance/CodeCommune
	BirthCountry string // LieuNaissance/CodePays
	BirthPlace   string // LieuNaissance/Libelle
	Address      Address
	// Anomalies holds the record-level anomalies (R1xx). A Demande with
	// anomalies gets Statut REJETE; the first one gives the Motif.
	Anomalies []Anomaly
}

// Rejected reports whether the record has a record-level anomaly.
func (d *Demande) Rejected() bool { return len(d.Anomalies) > 0 }

// Address is the Adresse of a Demande.
type Address struct {
	Line1, Line2, Line3 string
	PostalCode          string
	Commune             string
}

// Places is the reference data of the record-level checks R102 and R103.
// Implementations must be safe for the duration of one Validate call.
type Places interface {
	// KnownCommune reports whether code is an INSEE commune code.
	KnownCommune(code string) bool
	// KnownCountry reports whether code is an INSEE country code (99xxx).
	KnownCountry(code string) bool
	// PostalCodeMatches reports whether the postal code serves the commune
	// named commune, as written in Adresse/Commune (compare normalized
	// names, see NormalizeName).
	PostalCodeMatches(postalCode, commune string) bool
}

// Window is the period during which a campaign accepts call files; both
// bounds are included.
type Window struct {
	Campaign    int
	Open, Close time.Time
}

// Options tune Validate. The zero value checks everything that needs no
// reference data.
type Options struct {
	// Places enables R102 and R103; nil skips them.
	Places Places
	// Windows enables E008: when not empty, a file whose campaign has no
	// window containing DepositedAt is rejected.
	Windows []Window
	// DepositedAt is when the file was deposited; zero means the time in
	// the file name.
	DepositedAt time.Time
}

// Validate reads a call file from r and checks it against the contract:
// well-formedness and encoding, DemandeAPA.xsd, consistency with name (E004;
// skipped for the parts of name that are zero), NombreDemandes, forbidden
// data, the campaign window and the record-level rules. It never loads the
// file: memory stays constant except for the set of references seen, which
// is bounded by MaxDemandes.
//
// visit, if not nil, is called for each Demande, in file order, as soon as
// it has been read, until the first blocking anomaly. Because an anomaly
// found later (a duplicate reference, a wrong NombreDemandes, a truncated
// file…) rejects the whole file, a caller must hold what visit produces
// until Validate returns and discard it when the report is Rejected. The
// Demande passed to visit may be retained. An error from visit stops
// validation and is returned as is.
//
// Anomalies of the file are in the Report; the error is only for failures
// to read r and errors from visit.
func Validate(r io.Reader, name CallName, opts Options, visit func(Demande) error) (*Report, error) {
	v := &validator{
		sc:    newScanner(r),
		name:  name,
		opts:  opts,
		visit: visit,
		rep:   &Report{},
		root:  requestModel(),
		refs:  newRefSet(),
	}
	err := v.run()
	v.rep.Encoding = v.sc.encoding
	v.rep.Demandes = v.count
	return v.rep, err
}

// frame is an open element.
type frame struct {
	el        *elem
	part, n   int // current particle of the content model and its occurrences
	line, col int
	index     int  // Demande number, for paths
	bad       bool // the element held child elements where text was expected
	text      bool // stray text already reported
}

type validator struct {
	sc    *scanner
	name  CallName
	opts  Options
	visit func(Demande) error
	rep   *Report
	root  *elem

	stack []frame
	skip  int // depth inside a subtree that is being skipped

	val     []byte // text of the current simple element
	valLong bool

	created   dateTimeParts // DateCreation, when valid
	createdOK bool
	nombre    frame // position of NombreDemandes, when valid
	nombreOK  bool

	count int // Demande elements seen
	refs  *refSet
	rec   record
}

// record accumulates the values of the current Demande in one arena, turned
// into a single string when the record is handed to visit.
type record struct {
	arena     []byte
	offs      [nFields][2]int32
	pos       [nFields][2]int32 // line and column of each element
	set       [nFields]bool
	ref       string
	anomalies []Anomaly
	open      bool
}

func (v *validator) run() error {
	for {
		kind, err := v.sc.next()
		if err != nil {
			var se *syntaxError
			if errors.As(err, &se) {
				v.add(se.code, se.msg, se.line, se.col, v.path(""))
				return nil
			}
			return err
		}
		switch kind {
		case tokStart:
			v.start()
		case tokText:
			v.text()
		case tokEnd:
			if err := v.end(); err != nil {
				return err
			}
		case tokEOF:
			return nil
		}
	}
}

// add records an anomaly with the code's severity.
func (v *validator) add(code, label string, line, col int, path string) {
	sev := SeverityBlocking
	if code[0] == 'R' {
		sev = SeverityWarning
	}
	a := Anomaly{Code: code, Severity: sev, Label: label, Line: line, Column: col, Path: path}
	if v.rec.open {
		a.Reference = v.rec.ref
	}
	v.rep.add(a)
	if sev == SeverityWarning && v.rec.open {
		v.rec.anomalies = append(v.rec.anomalies, a)
	}
}

func (v *validator) schemaErr(label string, line, col int, path string) {
	v.add(CodeSchema, label, line, col, path)
}

// path returns the path of the open elements, then leaf if not "".
func (v *validator) path(leaf string) string {
	var b strings.Builder
	for _, f := range v.stack {
		b.WriteByte('/')
		b.WriteString(f.el.name)
		if f.el.name == demandeName {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		}
	}
	if leaf != "" {
		b.WriteByte('/')
		b.WriteString(leaf)
	}
	return b.String()
}

func (v *validator) start() {
	sc := v.sc
	if v.skip > 0 {
		v.skip++
		return
	}
	name, line, col := sc.name, sc.tokLine, sc.tokCol
	if len(v.stack) == 0 {
		if string(name) != rootName {
			v.schemaErr(fmt.Sprintf("Élément racine %s attendu, %s trouvé", rootName, safeName(name)), line, col, "/"+safeName(name))
			v.skip = 1
			return
		}
		v.stack = append(v.stack, frame{el: v.root, line: line, col: col})
		v.checkAttrs(true)
		return
	}
	top := &v.stack[len(v.stack)-1]
	if top.el.content == nil {
		if !top.bad {
			v.schemaErr(fmt.Sprintf("L'élément %s ne doit contenir que du texte, pas d'élément %s", top.el.name, safeName(name)), line, col, v.path(""))
		}
		top.bad = true
		v.skip = 1
		return
	}
	e := v.advance(top, name, line, col)
	if e == nil {
		v.skip = 1
		return
	}
	f := frame{el: e, line: line, col: col}
	if e.name == demandeName {
		v.count++
		f.index = v.count
		if v.count == MaxDemandes+1 {
			v.stack = append(v.stack, f)
			v.add(CodeTooMany, "Plus de 100 000 éléments Demande dans le fichier (au plus 100 000 par fichier)", line, col, v.path(""))
			v.stack = v.stack[:len(v.stack)-1]
		}
		v.rec.arena = v.rec.arena[:0]
		v.rec.set = [nFields]bool{}
		v.rec.ref = ""
		v.rec.anomalies = v.rec.anomalies[:0]
		v.rec.open = true
	}
	v.stack = append(v.stack, f)
	v.checkAttrs(false)
	if e.content == nil {
		v.val = v.val[:0]
		v.valLong = false
	}
}

// advance moves the content model of top to the child name and returns its
// declaration, or reports why the child is not expected and returns nil.
func (v *validator) advance(top *frame, name []byte, line, col int) *elem {
	ps := top.el.content
	i := top.part
	if top.n > 0 {
		if e := ps[i].match(name); e != nil && (ps[i].max < 0 || top.n < ps[i].max) {
			top.n++
			return e
		}
	}
	from := i
	if top.n > 0 {
		from = i + 1
	}
	for j := from; j < len(ps); j++ {
		e := ps[j].match(name)
		if e == nil {
			continue
		}
		for k := from; k < j; k++ {
			if ps[k].min > 0 {
				v.missing(&ps[k], top.el.name, line, col)
			}
		}
		top.part, top.n = j, 1
		return e
	}
	for j := 0; j <= i && j < len(ps); j++ {
		if ps[j].match(name) != nil {
			v.schemaErr(fmt.Sprintf("Élément %s en trop ou mal placé dans %s", safeName(name), top.el.name), line, col, v.path(safeName(name)))
			return nil
		}
	}
	v.schemaErr(fmt.Sprintf("Élément %s non prévu dans %s", safeName(name), top.el.name), line, col, v.path(safeName(name)))
	if isForbiddenElement(name) {
		v.add(CodeForbiddenData, fmt.Sprintf("Élément %s interdit : ni NIR ni coordonnées bancaires dans une demande", safeName(name)), line, col, v.path(safeName(name)))
	}
	return nil
}

func isForbiddenElement(name []byte) bool {
	for _, s := range [...]string{"NIR", "IBAN", "BIC", "RIB", "NSS", "NumeroSecuriteSociale", "NumeroSecu"} {
		if bytes.EqualFold(name, []byte(s)) {
			return true
		}
	}
	return false
}

func (v *validator) missing(p *particle, parent string, line, col int) {
	leaf := ""
	if len(p.elems) == 1 {
		leaf = p.elems[0].name
	}
	v.schemaErr(fmt.Sprintf("Élément obligatoire %s absent de %s", p.label(), parent), line, col, v.path(leaf))
}

const xsiNamespace = "http://www.w3.org/2001/XMLSchema-instance"

// checkAttrs checks the attributes of the element just opened.
func (v *validator) checkAttrs(root bool) {
	sc := v.sc
	f := &v.stack[len(v.stack)-1]
	version, xsi := false, false
	if root {
		for _, a := range sc.attrs {
			if string(a.name) == "xmlns:xsi" && string(a.value) == xsiNamespace {
				xsi = true
			}
		}
	}
	for _, a := range sc.attrs {
		n := string(a.name)
		switch {
		case n == "xmlns":
			if len(a.value) > 0 {
				v.schemaErr(fmt.Sprintf("Espace de noms interdit sur l'élément %s : les éléments sont sans espace de noms", f.el.name), f.line, f.col, v.path(""))
			}
		case strings.HasPrefix(n, "xmlns:"):
		case root && n == "version":
			version = true
			if string(a.value) != "1.0" {
				v.schemaErr("Attribut version de DemandeAPA : valeur attendue « 1.0 »", f.line, f.col, v.path("@version"))
			}
		case root && xsi && (n == "xsi:noNamespaceSchemaLocation" || n == "xsi:schemaLocation"):
		default:
			v.schemaErr(fmt.Sprintf("Attribut %s non autorisé sur l'élément %s", safeName(a.name), f.el.name), f.line, f.col, v.path("@"+safeName(a.name)))
		}
	}
	if root && !version {
		v.schemaErr("Attribut version obligatoire absent de DemandeAPA", f.line, f.col, v.path("@version"))
	}
}

func (v *validator) text() {
	if v.skip > 0 || len(v.stack) == 0 {
		return
	}
	sc := v.sc
	top := &v.stack[len(v.stack)-1]
	if top.el.content == nil {
		if room := maxText - len(v.val); len(sc.text) > room {
			v.val = append(v.val, sc.text[:room]...)
			v.valLong = true
		} else {
			v.val = append(v.val, sc.text...)
		}
		v.valLong = v.valLong || sc.textLong
		return
	}
	if !sc.textSpace && !top.text {
		top.text = true
		v.schemaErr(fmt.Sprintf("Texte non autorisé directement dans l'élément %s", top.el.name), sc.tokLine, sc.tokCol, v.path(""))
	}
}

func (v *validator) end() error {
	if v.skip > 0 {
		v.skip--
		return nil
	}
	if len(v.stack) == 0 {
		return nil
	}
	f := &v.stack[len(v.stack)-1]
	defer func() { v.stack = v.stack[:len(v.stack)-1] }()
	if f.el.content == nil {
		if !f.bad {
			v.endSimple(f)
		}
		return nil
	}
	ps := f.el.content
	from := f.part
	if f.n > 0 {
		from++
	}
	for k := from; k < len(ps); k++ {
		if ps[k].min > 0 {
			v.missing(&ps[k], f.el.name, f.line, f.col)
		}
	}
	switch f.el.name {
	case demandeName:
		return v.endRecord(f)
	case rootName:
		v.endRoot()
	}
	return nil
}

func (v *validator) endSimple(f *frame) {
	val := v.val
	ok := !v.valLong && f.el.check(val)
	if !ok {
		v.schemaErr(fmt.Sprintf("Valeur invalide pour %s : attendu %s", f.el.name, f.el.want), f.line, f.col, v.path(""))
	}
	if kind := forbiddenData(val); kind != "" && !(f.el.field.coded() && (kind == ForbiddenNIRBadKey || kind == ForbiddenIBANBadKey)) {
		v.add(CodeForbiddenData, fmt.Sprintf("Donnée interdite dans %s : %s", f.el.name, kind), f.line, f.col, v.path(""))
	}
	if !ok {
		return
	}
	h := &v.rep.Header
	switch f.el.field {
	case fCampagne:
		h.Campaign, _ = strconv.Atoi(string(val))
		if v.name.Campaign != 0 && h.Campaign != v.name.Campaign {
			v.add(CodeHeaderMismatch, fmt.Sprintf("Campagne de l'en-tête (%d) différente de celle du nom du fichier (%d)", h.Campaign, v.name.Campaign), f.line, f.col, v.path(""))
		}
		v.checkWindow(h.Campaign, f)
	case fSiret:
		h.SIRET = string(val)
		if v.name.SIRET != "" && h.SIRET != v.name.SIRET {
			v.add(CodeHeaderMismatch, fmt.Sprintf("SiretDeposant de l'en-tête (%s) différent du SIRET du nom du fichier (%s)", h.SIRET, v.name.SIRET), f.line, f.col, v.path(""))
		}
	case fDateCreation:
		t, _ := parseLocalDateTime(val)
		v.created, v.createdOK = t, true
		h.Created = time.Date(t.year, time.Month(t.month), t.day, t.hour, t.min, t.sec, 0, Paris)
		if !v.name.Timestamp.IsZero() {
			want := v.name.Timestamp.In(Paris).Format("2006-01-02T15:04:05")
			got := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", t.year, t.month, t.day, t.hour, t.min, t.sec)
			if got != want {
				v.add(CodeHeaderMismatch, fmt.Sprintf("DateCreation de l'en-tête (%s) différente de l'horodatage du nom du fichier (%s)", got, want), f.line, f.col, v.path(""))
			}
		}
	case fCourriel:
		h.Contact = string(val)
	case fEmetteurNom:
		h.SenderName = string(val)
	case fEmetteurPrenom:
		h.SenderFirstName = string(val)
	case fNombre:
		h.Declared, _ = parsePositiveInteger(val)
		v.nombre, v.nombreOK = *f, true
		v.refs.expect(h.Declared)
	default:
		rec := &v.rec
		start := len(rec.arena)
		rec.arena = append(rec.arena, val...)
		rec.offs[f.el.field] = [2]int32{int32(start), int32(len(rec.arena))}
		rec.pos[f.el.field] = [2]int32{int32(f.line), int32(f.col)}
		rec.set[f.el.field] = true
		if f.el.field == fReference {
			v.checkReference(val, f)
		}
	}
}

func (v *validator) checkWindow(campaign int, f *frame) {
	if len(v.opts.Windows) == 0 {
		return
	}
	at := v.opts.DepositedAt
	if at.IsZero() {
		at = v.name.Timestamp
	}
	for _, w := range v.opts.Windows {
		if w.Campaign == campaign && !at.Before(w.Open) && !at.After(w.Close) {
			return
		}
	}
	v.add(CodeCampaignClosed, fmt.Sprintf("Campagne %d fermée à la date du dépôt", campaign), f.line, f.col, v.path(""))
}

func (v *validator) checkReference(val []byte, f *frame) {
	v.rec.ref = string(val)
	if prev, dup := v.refs.add(val, v.count); dup {
		v.add(CodeDuplicateRef, fmt.Sprintf("ReferenceDossier en double : déjà utilisée par la demande n° %d", prev), f.line, f.col, v.path(""))
	}
}

func (v *validator) endRecord(f *frame) error {
	rec := &v.rec
	defer func() { rec.open = false }()
	get := func(fl field) []byte { o := rec.offs[fl]; return rec.arena[o[0]:o[1]] }
	warn := func(code, label string, fl field, path string) {
		p := rec.pos[fl]
		v.add(code, label, int(p[0]), int(p[1]), v.path(path))
	}
	if rec.set[fDateNaissance] {
		if why := v.birthDateProblem(get(fDateNaissance)); why != "" {
			warn(CodeBirthDate, why, fDateNaissance, "DateNaissance")
		}
	}
	if p := v.opts.Places; p != nil {
		switch {
		case rec.set[fCodeCommune] && !p.KnownCommune(string(get(fCodeCommune))):
			warn(CodeBirthPlace, "CodeCommune de naissance inconnu du code officiel géographique", fCodeCommune, "LieuNaissance/CodeCommune")
		case rec.set[fCodePays] && !p.KnownCountry(string(get(fCodePays))):
			warn(CodeBirthPlace, "CodePays de naissance inconnu du code officiel géographique", fCodePays, "LieuNaissance/CodePays")
		}
		if rec.set[fCodePostal] && rec.set[fCommune] && !p.PostalCodeMatches(string(get(fCodePostal)), string(get(fCommune))) {
			warn(CodePostalCode, "CodePostal de l'adresse incohérent avec la Commune", fCodePostal, "Adresse/CodePostal")
		}
	}
	if len(rec.anomalies) > 0 {
		v.rep.RecordsRejected++
	}
	if v.visit == nil || v.rep.Rejected() {
		return nil
	}
	s := string(rec.arena)
	str := func(fl field) string {
		if !rec.set[fl] {
			return ""
		}
		o := rec.offs[fl]
		return s[o[0]:o[1]]
	}
	d := Demande{
		Index:        f.index,
		Line:         f.line,
		Column:       f.col,
		Reference:    str(fReference),
		Sex:          str(fSexe),
		BirthName:    str(fNomNaissance),
		UsageName:    str(fNomUsage),
		FirstName:    str(fPrenoms),
		BirthDate:    str(fDateNaissance),
		BirthCommune: str(fCodeCommune),
		BirthCountry: str(fCodePays),
		BirthPlace:   str(fLibelle),
		Address: Address{
			Line1:      str(fLigne1),
			Line2:      str(fLigne2),
			Line3:      str(fLigne3),
			PostalCode: str(fCodePostal),
			Commune:    str(fCommune),
		},
	}
	if len(rec.anomalies) > 0 {
		d.Anomalies = append([]Anomaly(nil), rec.anomalies...)
	}
	return v.visit(d)
}

// earliestBirthYear is the first year accepted in DateNaissance: earlier
// years are typing errors (0938 for 1938).
const earliestBirthYear = 1850

// birthDateProblem returns why a DateNaissance matching the pattern cannot
// be a real birth date (R101), or "". The message names the field only.
func (v *validator) birthDateProblem(b []byte) string {
	y := int(b[0]-'0')*1000 + int(b[1]-'0')*100 + int(b[2]-'0')*10 + int(b[3]-'0')
	m := int(b[5]-'0')*10 + int(b[6]-'0')
	d := int(b[8]-'0')*10 + int(b[9]-'0')
	switch {
	case y < earliestBirthYear:
		return "DateNaissance inexistante : année antérieure à 1850"
	case m != 0 && d > daysIn(m, y):
		return "DateNaissance inexistante : ce jour n'existe pas dans ce mois"
	}
	ref := v.created
	if !v.createdOK {
		if v.name.Timestamp.IsZero() {
			return ""
		}
		t := v.name.Timestamp.In(Paris)
		ref = dateTimeParts{year: t.Year(), month: int(t.Month()), day: t.Day()}
	}
	if earliest := y*10000 + max(m, 1)*100 + max(d, 1); earliest > ref.year*10000+ref.month*100+ref.day {
		return "DateNaissance inexistante : postérieure à la date de création du fichier"
	}
	return ""
}

func (v *validator) endRoot() {
	if !v.nombreOK || v.rep.Header.Declared == v.count {
		return
	}
	declared := strconv.Itoa(v.rep.Header.Declared)
	if v.rep.Header.Declared > MaxDemandes {
		declared = "plus de 100 000"
	}
	f := v.nombre
	v.add(CodeCountMismatch, fmt.Sprintf("NombreDemandes (%s) différent du nombre d'éléments Demande (%d)", declared, v.count),
		f.line, f.col, "/DemandeAPA/Entete/NombreDemandes")
}
