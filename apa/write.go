package apa

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pigp/pigp"
)

// Statuses of a Resultat (§3).
const (
	StatusFound     = "TROUVE"
	StatusNotFound  = "NON_TROUVE"
	StatusAmbiguous = "AMBIGU"
	StatusRejected  = "REJETE"
)

// Income categories of a Ressource (LPF art. R.* 153 A-2), as the domain
// defines them.
const (
	CategoryTSPR   = pigp.CatTSPR   // traitements, salaires, pensions et rentes
	CategoryBNS    = pigp.CatBNS    // revenus d'activités non salariées
	CategoryPVM    = pigp.CatPVM    // plus-values de cessions de biens mobiliers
	CategoryRCM    = pigp.CatRCM    // revenus de capitaux mobiliers
	CategoryRCMPFL = pigp.CatRCMPFL // RCM soumis au prélèvement forfaitaire libératoire
	CategoryRF     = pigp.CatRF     // revenus fonciers
)

// Beneficiaries of a Ressource.
const (
	BeneficiaryD1        = pigp.BenD1    // déclarant 1
	BeneficiaryD2        = pigp.BenD2    // déclarant 2
	BeneficiaryDependant = pigp.BenPAC   // personnes à charge
	BeneficiaryHousehold = pigp.BenFoyer // the whole foyer
)

// Result is the answer to one Demande (ReponseAPA/Resultat).
type Result struct {
	Reference string     // ReferenceDossier, echoed
	Status    string     // StatusFound, StatusNotFound, StatusAmbiguous or StatusRejected
	Reason    *Reason    // Motif: required unless StatusFound
	Household *Household // Foyer: present if and only if StatusFound
}

// Reason is the Motif of a result.
type Reason struct {
	Code  string // R1xx, N2xx
	Label string // French
}

// Household is the fiscal foyer of a found person.
type Household struct {
	Declarants []Declarant // one or two
	Resources  []Resource
}

// Declarant is a declarant of the foyer, as known to the fiscal data.
type Declarant struct {
	Rank       int // 1 or 2
	BirthName  string
	FirstNames string
	BirthDate  string // AAAA-MM-JJ, "00" for an unknown part
}

// Resource is an income of the income year.
type Resource struct {
	Category    string
	Beneficiary string
	Amount      int64 // euros, ≥ 0
}

// RejectedResult returns the result of a Demande with record-level
// anomalies: Statut REJETE with the first anomaly as Motif.
func RejectedResult(d Demande) Result {
	r := Result{Reference: d.Reference, Status: StatusRejected}
	if len(d.Anomalies) > 0 {
		a := d.Anomalies[0]
		r.Reason = &Reason{Code: a.Code, Label: a.Label}
	}
	return r
}

// Counts are the totals of a response header.
type Counts struct {
	Demandes  int // NombreDemandes
	Found     int // NombreTrouves
	NotFound  int // NombreNonTrouves
	Ambiguous int // NombreAmbigus
	Rejected  int // NombreRejetes
}

// ResponseHeader holds the Entete values of a response that are not counts.
type ResponseHeader struct {
	Campaign  int       // Campagne; AnneeRevenus is Campaign − 1
	SIRET     string    // SiretDeposant
	CallName  string    // NomFichierDemande: the call's external name
	DepositID string    // IdentifiantDepot
	Produced  time.Time // DateProduction, written in Europe/Paris
}

// ResponseWriter writes a ReponseAPA without holding it in memory. The
// header carries counts known only once every result is written, so results
// go first to a scratch file (a temporary *os.File, say) and Finish writes
// the complete document: declaration, header, then the results copied from
// scratch. Memory stays constant; the scratch file is about as large as the
// response.
type ResponseWriter struct {
	scratch io.ReadWriteSeeker
	start   int64
	bw      *bufio.Writer
	n       int64
	counts  Counts
	err     error
}

// NewResponseWriter returns a writer that appends results to scratch from
// its current offset.
func NewResponseWriter(scratch io.ReadWriteSeeker) *ResponseWriter {
	w := &ResponseWriter{scratch: scratch}
	w.start, w.err = scratch.Seek(0, io.SeekCurrent)
	w.bw = bufio.NewWriter(&countWriter{w: scratch, n: &w.n})
	return w
}

// Counts returns the counts of the results written so far.
func (w *ResponseWriter) Counts() Counts { return w.counts }

// WriteResult appends a result; results must come in the order of the
// Demande elements. It returns an EINVALID error if r breaks the contract
// (unknown status, Motif or Foyer where not allowed…).
func (w *ResponseWriter) WriteResult(r Result) error {
	if w.err != nil {
		return w.err
	}
	if err := checkResult(r); err != nil {
		return err
	}
	x := xmlWriter{w: w.bw}
	x.open(1, "Resultat")
	x.elem(2, "ReferenceDossier", r.Reference)
	x.elem(2, "Statut", r.Status)
	if r.Reason != nil {
		x.open(2, "Motif")
		x.elem(3, "Code", r.Reason.Code)
		x.elem(3, "Libelle", r.Reason.Label)
		x.close(2, "Motif")
	}
	if h := r.Household; h != nil {
		x.open(2, "Foyer")
		for _, d := range h.Declarants {
			x.indent(3)
			x.raw(`<Declarant rang="` + strconv.Itoa(d.Rank) + "\">\n")
			x.elem(4, "NomNaissance", d.BirthName)
			x.elem(4, "Prenoms", d.FirstNames)
			x.elem(4, "DateNaissance", d.BirthDate)
			x.close(3, "Declarant")
		}
		for _, res := range h.Resources {
			x.open(3, "Ressource")
			x.elem(4, "Categorie", res.Category)
			x.elem(4, "Beneficiaire", res.Beneficiary)
			x.elem(4, "Montant", strconv.FormatInt(res.Amount, 10))
			x.close(3, "Ressource")
		}
		x.close(2, "Foyer")
	}
	x.close(1, "Resultat")
	if w.err = x.err; w.err != nil {
		return w.err
	}
	w.counts.Demandes++
	switch r.Status {
	case StatusFound:
		w.counts.Found++
	case StatusNotFound:
		w.counts.NotFound++
	case StatusAmbiguous:
		w.counts.Ambiguous++
	case StatusRejected:
		w.counts.Rejected++
	}
	return nil
}

func checkResult(r Result) error {
	bad := func(format string, args ...any) error {
		return pigp.Errorf(pigp.EINVALID, "résultat %q invalide : "+format, append([]any{r.Reference}, args...)...)
	}
	if !isReference([]byte(r.Reference)) {
		return bad("ReferenceDossier hors format")
	}
	switch r.Status {
	case StatusFound:
		if r.Household == nil {
			return bad("Foyer obligatoire pour le statut TROUVE")
		}
	case StatusNotFound, StatusAmbiguous, StatusRejected:
		if r.Reason == nil {
			return bad("Motif obligatoire pour le statut %s", r.Status)
		}
		if r.Household != nil {
			return bad("Foyer interdit pour le statut %s", r.Status)
		}
	default:
		return bad("statut inconnu")
	}
	if m := r.Reason; m != nil {
		if len(m.Code) != 4 || (m.Code[0] != 'E' && m.Code[0] != 'R' && m.Code[0] != 'N') || !digitsOnly([]byte(m.Code[1:])) {
			return bad("code de motif hors format")
		}
		if !lengthIn([]byte(m.Label), 1, 500) {
			return bad("libellé de motif vide ou trop long")
		}
	}
	if h := r.Household; h != nil {
		if len(h.Declarants) < 1 || len(h.Declarants) > 2 {
			return bad("un ou deux déclarants attendus")
		}
		for _, d := range h.Declarants {
			if d.Rank != 1 && d.Rank != 2 {
				return bad("rang de déclarant hors de 1 et 2")
			}
			if !lengthIn([]byte(d.BirthName), 1, 80) || !lengthIn([]byte(d.FirstNames), 1, 100) || !isBirthDatePattern([]byte(d.BirthDate)) {
				return bad("identité de déclarant hors format")
			}
		}
		for _, res := range h.Resources {
			switch res.Category {
			case CategoryTSPR, CategoryBNS, CategoryPVM, CategoryRCM, CategoryRCMPFL, CategoryRF:
			default:
				return bad("catégorie de ressource inconnue")
			}
			switch res.Beneficiary {
			case BeneficiaryD1, BeneficiaryD2, BeneficiaryDependant, BeneficiaryHousehold:
			default:
				return bad("bénéficiaire de ressource inconnu")
			}
			if res.Amount < 0 {
				return bad("montant négatif")
			}
		}
	}
	return nil
}

// Finish writes the complete ReponseAPA to dst and returns the bytes
// written. It fails if no result was written or h is incomplete.
func (w *ResponseWriter) Finish(dst io.Writer, h ResponseHeader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.bw.Flush(); err != nil {
		return 0, err
	}
	if w.counts.Demandes == 0 {
		return 0, pigp.Errorf(pigp.EINVALID, "réponse sans aucun résultat")
	}
	if err := checkIdentity(h.Campaign, h.SIRET, h.CallName, h.DepositID); err != nil {
		return 0, err
	}
	if _, err := w.scratch.Seek(w.start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind response scratch: %w", err)
	}
	var n int64
	bw := bufio.NewWriter(&countWriter{w: dst, n: &n})
	x := xmlWriter{w: bw}
	c := w.counts
	x.raw(xmlDecl + "<ReponseAPA version=\"1.0\">\n")
	x.open(1, "Entete")
	x.elem(2, "Campagne", strconv.Itoa(h.Campaign))
	x.elem(2, "AnneeRevenus", strconv.Itoa(h.Campaign-1))
	x.elem(2, "SiretDeposant", h.SIRET)
	x.elem(2, "NomFichierDemande", h.CallName)
	x.elem(2, "IdentifiantDepot", h.DepositID)
	x.elem(2, "DateProduction", LocalDateTime(h.Produced))
	x.elem(2, "NombreDemandes", strconv.Itoa(c.Demandes))
	x.elem(2, "NombreTrouves", strconv.Itoa(c.Found))
	x.elem(2, "NombreNonTrouves", strconv.Itoa(c.NotFound))
	x.elem(2, "NombreAmbigus", strconv.Itoa(c.Ambiguous))
	x.elem(2, "NombreRejetes", strconv.Itoa(c.Rejected))
	x.close(1, "Entete")
	if x.err != nil {
		return n, x.err
	}
	if _, err := io.CopyN(bw, w.scratch, w.n); err != nil {
		return n, fmt.Errorf("copy response results: %w", err)
	}
	x.raw("</ReponseAPA>\n")
	if x.err != nil {
		return n, x.err
	}
	err := bw.Flush()
	return n, err
}

func checkIdentity(campaign int, siret, callName, depositID string) error {
	switch {
	case campaign < 1000 || campaign > 9999:
		return pigp.Errorf(pigp.EINVALID, "campagne %d hors format", campaign)
	case !isSIRETPattern([]byte(siret)):
		return pigp.Errorf(pigp.EINVALID, "SIRET hors format")
	case !pigp.IsID(depositID):
		return pigp.Errorf(pigp.EINVALID, "identifiant de dépôt hors format")
	case !isCallNamePattern(callName):
		return pigp.Errorf(pigp.EINVALID, "nom de fichier d'appel hors format")
	}
	return nil
}

// isCallNamePattern: [0-9]{4}_[0-9]{14}_[0-9]{14}\.xml, as in the XSDs.
func isCallNamePattern(s string) bool {
	return len(s) == 38 && s[4] == '_' && s[19] == '_' && s[34:] == ".xml" &&
		digitsOnly([]byte(s[:4])) && digitsOnly([]byte(s[5:19])) && digitsOnly([]byte(s[20:34]))
}

// ReportHeader holds the Entete values of a CompteRenduAPA.
type ReportHeader struct {
	CallName  string    // NomFichierDemande
	DepositID string    // IdentifiantDepot
	SIRET     string    // SiretDeposant
	Deposited time.Time // DateDepot
	Processed time.Time // DateTraitement
}

// WriteReport writes the CompteRenduAPA of a rejected call file: the header
// with NombreAnomalies = rep.Total, then the listed anomalies (at most
// MaxListedAnomalies). It fails if rep lists no anomaly.
func WriteReport(dst io.Writer, h ReportHeader, rep *Report) error {
	if len(rep.Anomalies) == 0 || rep.Total < len(rep.Anomalies) {
		return pigp.Errorf(pigp.EINVALID, "compte rendu sans anomalie")
	}
	if err := checkIdentity(2000, h.SIRET, h.CallName, h.DepositID); err != nil {
		return err
	}
	bw := bufio.NewWriter(dst)
	x := xmlWriter{w: bw}
	x.raw(xmlDecl + "<CompteRenduAPA version=\"1.0\">\n")
	x.open(1, "Entete")
	x.elem(2, "NomFichierDemande", h.CallName)
	x.elem(2, "IdentifiantDepot", h.DepositID)
	x.elem(2, "SiretDeposant", h.SIRET)
	x.elem(2, "DateDepot", LocalDateTime(h.Deposited))
	x.elem(2, "DateTraitement", LocalDateTime(h.Processed))
	x.elem(2, "Resultat", StatusRejected)
	x.elem(2, "NombreAnomalies", strconv.Itoa(rep.Total))
	x.close(1, "Entete")
	for i, a := range rep.Anomalies {
		if i == MaxListedAnomalies {
			break
		}
		x.open(1, "Anomalie")
		x.elem(2, "Code", a.Code)
		x.elem(2, "Severite", a.Severity)
		x.elem(2, "Libelle", a.Label)
		if a.Line > 0 {
			x.elem(2, "Ligne", strconv.Itoa(a.Line))
		}
		if a.Column > 0 {
			x.elem(2, "Colonne", strconv.Itoa(a.Column))
		}
		if a.Path != "" {
			x.elem(2, "Chemin", a.Path)
		}
		if a.Reference != "" {
			x.elem(2, "ReferenceDossier", a.Reference)
		}
		x.close(1, "Anomalie")
	}
	x.raw("</CompteRenduAPA>\n")
	if x.err != nil {
		return x.err
	}
	return bw.Flush()
}

// LocalDateTime formats t as an xs:dateTime without zone in Europe/Paris,
// as the contract's files carry it.
func LocalDateTime(t time.Time) string { return t.In(Paris).Format("2006-01-02T15:04:05") }

const xmlDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

// xmlWriter writes indented elements and remembers the first error.
type xmlWriter struct {
	w   *bufio.Writer
	err error
}

func (x *xmlWriter) raw(s string) {
	if x.err == nil {
		_, x.err = x.w.WriteString(s)
	}
}

func (x *xmlWriter) indent(depth int) {
	for range depth {
		x.raw("  ")
	}
}

func (x *xmlWriter) open(depth int, name string) {
	x.indent(depth)
	x.raw("<" + name + ">\n")
}

func (x *xmlWriter) close(depth int, name string) {
	x.indent(depth)
	x.raw("</" + name + ">\n")
}

func (x *xmlWriter) elem(depth int, name, value string) {
	x.indent(depth)
	x.raw("<" + name + ">")
	x.text(value)
	x.raw("</" + name + ">\n")
}

// text writes s escaped; bytes and characters XML cannot carry become
// U+FFFD.
func (x *xmlWriter) text(s string) {
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case r == '\r':
			esc = "&#xD;"
		case r == utf8.RuneError && size == 1, !isXMLChar(r):
			esc = "\uFFFD"
		default:
			i += size
			continue
		}
		x.raw(s[start:i])
		x.raw(esc)
		i += size
		start = i
	}
	x.raw(s[start:])
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}
