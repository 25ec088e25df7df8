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

// Lookup is what matching needs from the reference data. Matching works
// on batches of requests so that a large call file costs a few queries per
// batch rather than a few per request.
type Lookup interface {
	// FindPersonsByNames returns the declarants whose normalised birth name
	// and first first name are one of the given pairs.
	FindPersonsByNames(ctx context.Context, keys [][2]string) ([]pigp.Person, error)
	// FindFoyers returns the foyers with the given ids, with their
	// declarants and their resources of year.
	FindFoyers(ctx context.Context, ids []string, year int) (map[string]*pigp.Foyer, error)
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

// Match finds the foyer of the person one request identifies.
func Match(ctx context.Context, l Lookup, req Request, year int) (Result, error) {
	rs, err := MatchBatch(ctx, l, []Request{req}, year)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// MatchBatch finds the foyers of the persons requests identify (contract
// §6): normalised birth name, first first name and sex equal, birth date
// equal ("00" parts match any); several candidates are narrowed by birth
// place; still several gives Ambiguous, none NotFound. Results are in the
// order of the requests.
func MatchBatch(ctx context.Context, l Lookup, reqs []Request, year int) ([]Result, error) {
	keys := make([][2]string, 0, len(reqs))
	seen := map[[2]string]bool{}
	for _, r := range reqs {
		k := [2]string{NormalizeName(r.BirthName), FirstFirstName(r.FirstNames)}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	persons, err := l.FindPersonsByNames(ctx, keys)
	if err != nil {
		return nil, err
	}
	type identity struct{ name, first, sex string }
	byIdentity := map[identity][]pigp.Person{}
	for _, p := range persons {
		k := identity{p.NameKey, p.FirstNameKey, p.Sex}
		byIdentity[k] = append(byIdentity[k], p)
	}
	results := make([]Result, len(reqs))
	found := map[string]bool{}
	chosen := make([]string, len(reqs))
	for i, req := range reqs {
		var candidates []pigp.Person
		for _, p := range byIdentity[identity{NormalizeName(req.BirthName), FirstFirstName(req.FirstNames), req.Sex}] {
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
			results[i] = Result{Status: NotFound, Code: apa.CodeNoMatch, Label: apa.CodeLabel(apa.CodeNoMatch)}
		case 1:
			chosen[i] = candidates[0].FoyerID
			found[chosen[i]] = true
		default:
			results[i] = Result{Status: Ambiguous, Code: apa.CodeAmbiguous, Label: apa.CodeLabel(apa.CodeAmbiguous)}
		}
	}
	if len(found) == 0 {
		return results, nil
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	foyers, err := l.FindFoyers(ctx, ids, year)
	if err != nil {
		return nil, err
	}
	for i, id := range chosen {
		if id == "" {
			continue
		}
		f, ok := foyers[id]
		if !ok {
			return nil, pigp.Errorf(pigp.EINTERNAL, "foyer %s disparu pendant le traitement", id)
		}
		results[i] = Result{Status: Found, Foyer: f}
	}
	return results, nil
}
