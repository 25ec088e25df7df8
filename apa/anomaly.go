package apa

// Anomaly codes of the contract (§5).
const (
	// File-level: the whole file is rejected with a CompteRenduAPA.
	CodeMalformed      = "E001" // XML mal formé
	CodeEncoding       = "E002" // encodage non pris en charge
	CodeSchema         = "E003" // non conforme au schéma
	CodeHeaderMismatch = "E004" // en-tête incohérent avec le nom du fichier
	CodeCountMismatch  = "E005" // NombreDemandes différent du nombre de Demande
	CodeTooMany        = "E006" // plus de 100 000 demandes
	CodeForbiddenData  = "E007" // NIR ou coordonnées bancaires dans un champ
	CodeCampaignClosed = "E008" // campagne fermée
	CodeDuplicateRef   = "E009" // ReferenceDossier en double
	CodeEmpty          = "E010" // fichier vide

	// Record-level: the Demande gets Statut REJETE, the others are processed.
	CodeBirthDate  = "R101" // date de naissance inexistante
	CodeBirthPlace = "R102" // code commune ou pays de naissance inconnu
	CodePostalCode = "R103" // code postal incohérent avec la commune

	// Matching: Motif of a NON_TROUVE or AMBIGU result.
	CodeNoMatch   = "N201" // aucun foyer ne correspond
	CodeAmbiguous = "N202" // plusieurs foyers correspondent
)

// CodeLabel returns the French meaning of a code as the contract words it
// (§5), suitable for a Motif/Libelle, or "" for an unknown code.
func CodeLabel(code string) string {
	switch code {
	case CodeMalformed:
		return "XML mal formé"
	case CodeEncoding:
		return "encodage non pris en charge"
	case CodeSchema:
		return "non conforme au schéma"
	case CodeHeaderMismatch:
		return "en-tête incohérent avec le nom du fichier"
	case CodeCountMismatch:
		return "NombreDemandes différent du nombre de Demande"
	case CodeTooMany:
		return "plus de 100 000 demandes"
	case CodeForbiddenData:
		return "donnée interdite : NIR ou coordonnées bancaires (IBAN/BIC) dans un champ"
	case CodeCampaignClosed:
		return "campagne fermée"
	case CodeDuplicateRef:
		return "ReferenceDossier en double"
	case CodeEmpty:
		return "fichier vide"
	case CodeBirthDate:
		return "date de naissance inexistante"
	case CodeBirthPlace:
		return "code commune ou pays de naissance inconnu"
	case CodePostalCode:
		return "code postal incohérent avec la commune"
	case CodeNoMatch:
		return "aucun foyer ne correspond"
	case CodeAmbiguous:
		return "plusieurs foyers correspondent"
	}
	return ""
}

// Severities of an anomaly (CompteRenduAPA/Anomalie/Severite).
const (
	SeverityBlocking = "BLOQUANTE"     // E codes: the file is rejected
	SeverityWarning  = "AVERTISSEMENT" // R codes: only the record is rejected
)

// MaxDemandes is the largest number of Demande elements in a call file.
const MaxDemandes = 100000

// MaxListedAnomalies is how many anomalies a Report (and so a
// CompteRenduAPA) lists; the others are only counted.
const MaxListedAnomalies = 1000

// Anomaly is one problem found in a call file. Label is French, names the
// field and never contains a personal value from the file.
type Anomaly struct {
	Code      string
	Severity  string
	Label     string
	Line      int    // 1-based line in the call file; 0 if unknown
	Column    int    // 1-based column in characters; 0 if unknown
	Path      string // e.g. /DemandeAPA/Demande[3]/DateNaissance; "" if none
	Reference string // ReferenceDossier of the Demande concerned, if known
}

// Blocking reports whether the anomaly rejects the whole file.
func (a Anomaly) Blocking() bool { return a.Severity == SeverityBlocking }

// Report is the outcome of validating a call file.
type Report struct {
	// Encoding is the declared encoding: UTF-8, ISO-8859-1 or ISO-8859-15.
	Encoding string
	// Header holds the Entete values that were valid.
	Header Header
	// Demandes counts the Demande elements seen.
	Demandes int
	// RecordsRejected counts the Demande elements with a record-level
	// anomaly (R1xx).
	RecordsRejected int
	// Anomalies lists at most MaxListedAnomalies anomalies in file order,
	// blocking ones first kept when the cap is reached.
	Anomalies []Anomaly
	// Total counts every anomaly found, listed or not.
	Total int

	blocking int // blocking anomalies found
	warnings int // warnings currently listed
}

// Rejected reports whether the whole file is rejected: some anomaly is
// blocking. A rejected file gets a CompteRenduAPA and no response.
func (r *Report) Rejected() bool { return r.blocking > 0 }

// Blocking counts the blocking anomalies found, listed or not.
func (r *Report) Blocking() int { return r.blocking }

// Codes returns the distinct codes of the listed anomalies, in order of
// first appearance.
func (r *Report) Codes() []string {
	var codes []string
	seen := make(map[string]bool)
	for _, a := range r.Anomalies {
		if !seen[a.Code] {
			seen[a.Code] = true
			codes = append(codes, a.Code)
		}
	}
	return codes
}

// add records a; when the list is full, a blocking anomaly replaces the last
// listed warning so that the reasons for a rejection are always listed.
func (r *Report) add(a Anomaly) {
	r.Total++
	if a.Blocking() {
		r.blocking++
	}
	if len(r.Anomalies) < MaxListedAnomalies {
		r.Anomalies = append(r.Anomalies, a)
		if !a.Blocking() {
			r.warnings++
		}
		return
	}
	if !a.Blocking() || r.warnings == 0 {
		return
	}
	for i := len(r.Anomalies) - 1; i >= 0; i-- {
		if !r.Anomalies[i].Blocking() {
			r.Anomalies = append(r.Anomalies[:i], r.Anomalies[i+1:]...)
			r.Anomalies = append(r.Anomalies, a)
			r.warnings--
			return
		}
	}
}
