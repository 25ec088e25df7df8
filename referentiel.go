package pigp

// Resource categories of the answer (R.* 153 A-2; contract §3).
const (
	CatTSPR   = "TSPR"    // traitements, salaires, pensions et rentes
	CatBNS    = "BNS"     // revenus d'activités non salariées
	CatPVM    = "PVM"     // plus-values de cessions de biens mobiliers
	CatRCM    = "RCM"     // revenus de capitaux mobiliers
	CatRCMPFL = "RCM_PFL" // revenus de capitaux mobiliers au prélèvement forfaitaire libératoire
	CatRF     = "RF"      // revenus fonciers
)

// Categories lists the resource categories in the order of the contract.
var Categories = []string{CatTSPR, CatBNS, CatPVM, CatRCM, CatRCMPFL, CatRF}

// Beneficiaries of a resource.
const (
	BenD1    = "D1"
	BenD2    = "D2"
	BenPAC   = "PAC"
	BenFoyer = "FOYER"
)

// Person is a declarant of the fiscal reference data.
type Person struct {
	FoyerID      string
	Rank         int    // 1 or 2 (déclarant 1 or 2)
	Sex          string // M or F
	BirthName    string
	UsageName    string
	FirstNames   string // several separated by spaces
	BirthDate    string // AAAA-MM-JJ
	BirthPlace   string // INSEE commune code or 99xxx country code
	NameKey      string // normalised birth name
	FirstNameKey string // normalised first first name
}

// Resource is one income amount of a foyer for an income year.
type Resource struct {
	FoyerID     string
	Year        int // année des revenus
	Category    string
	Beneficiary string
	Amount      int64 // euros, non-negative
}

// Foyer is a tax household: its declarants and its resources of one year.
type Foyer struct {
	ID         string
	Declarants []Person
	Resources  []Resource
}
