package fiscal

import (
	"context"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// Outcomes of matching: the Statut values of the contract (§3).
const (
	Found     = apa.StatusFound
	NotFound  = apa.StatusNotFound
	Ambiguous = apa.StatusAmbiguous
)

// Lookup is what matching needs from the reference data.
type Lookup interface {
	// FindPersons returns the declarants whose normalised birth name, first
	// first name and sex are the given ones.
	FindPersons(ctx context.Context, nameKey, firstNameKey, sex string) ([]pigp.Person, error)
	// FindFoyer returns a foyer's declarants and its resources of year.
	FindFoyer(ctx context.Context, foyerID string, year int) (*pigp.Foyer, error)
}

// Request is the identity a Demande gives.
type Request struct {
	Sex        string
	BirthName  string
	FirstNames string
	BirthDate  string // AAAA-MM-JJ with "00" for unknown parts
	BirthPlace string // CodeCommune or CodePays
}

// Result is the outcome of matching one request.
type Result struct {
	Status string
	Code   string // motif code when not Found
	Label  string
	Foyer  *pigp.Foyer // when Found
}

// Match finds the foyer of the person a request identifies (contract §6):
// normalised birth name, first first name and sex equal, birth date equal
// ("00" parts match any); several candidates are narrowed by birth place;
// still several gives Ambiguous, none NotFound.
func Match(ctx context.Context, l Lookup, req Request, year int) (Result, error) {
	persons, err := l.FindPersons(ctx, NormalizeName(req.BirthName), FirstFirstName(req.FirstNames), req.Sex)
	if err != nil {
		return Result{}, err
	}
	var candidates []pigp.Person
	for _, p := range persons {
		if BirthDateMatches(req.BirthDate, p.BirthDate) {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) > 1 && req.BirthPlace != "" {
		var narrowed []pigp.Person
		for _, p := range candidates {
			if p.BirthPlace == req.BirthPlace {
				narrowed = append(narrowed, p)
			}
		}
		if len(narrowed) > 0 {
			candidates = narrowed
		}
	}
	switch len(candidates) {
	case 0:
		return Result{Status: NotFound, Code: apa.CodeNoMatch, Label: apa.CodeLabel(apa.CodeNoMatch)}, nil
	case 1:
	default:
		return Result{Status: Ambiguous, Code: apa.CodeAmbiguous, Label: apa.CodeLabel(apa.CodeAmbiguous)}, nil
	}
	f, err := l.FindFoyer(ctx, candidates[0].FoyerID, year)
	if err != nil {
		return Result{}, err
	}
	return Result{Status: Found, Foyer: f}, nil
}
