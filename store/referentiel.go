package store

import (
	"context"
	"fmt"
	"sort"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

type refPersonRow struct {
	FoyerID      string `gorm:"primaryKey"`
	Rank         int    `gorm:"primaryKey;autoIncrement:false"`
	Sex          string
	BirthName    string
	UsageName    string
	FirstNames   string
	BirthDate    string
	BirthPlace   string
	NameKey      string
	FirstNameKey string
}

func (refPersonRow) TableName() string { return "ref_persons" }

type refResourceRow struct {
	FoyerID     string `gorm:"primaryKey"`
	Year        int    `gorm:"primaryKey;autoIncrement:false"`
	Category    string `gorm:"primaryKey"`
	Beneficiary string `gorm:"primaryKey"`
	Amount      int64
}

func (refResourceRow) TableName() string { return "ref_resources" }

func (r *refPersonRow) toPerson() pigp.Person {
	return pigp.Person{FoyerID: r.FoyerID, Rank: r.Rank, Sex: r.Sex, BirthName: r.BirthName, UsageName: r.UsageName,
		FirstNames: r.FirstNames, BirthDate: r.BirthDate, BirthPlace: r.BirthPlace, NameKey: r.NameKey, FirstNameKey: r.FirstNameKey}
}

// ImportReferentiel loads reference data in one transaction: the declarants
// of each foyer in the file replace that foyer's declarants, and its
// resources replace the foyer's resources of the same years. Either all of
// it is stored or nothing. The audit rows, if any, are appended at the end
// of the same transaction (the chain's lock is taken only then, so a long
// import does not hold back other audited work).
func (db *DB) ImportReferentiel(ctx context.Context, persons []pigp.Person, resources []pigp.Resource, audit ...*pigp.AuditEvent) error {
	if len(audit) > 0 && db.auditKey == nil {
		return errNoAuditKey
	}
	db.prepare(audit)
	foyers := map[string]bool{}
	years := map[string]map[int]bool{}
	for _, p := range persons {
		foyers[p.FoyerID] = true
	}
	for _, r := range resources {
		if years[r.FoyerID] == nil {
			years[r.FoyerID] = map[int]bool{}
		}
		years[r.FoyerID][r.Year] = true
	}
	ids := make([]string, 0, len(foyers))
	for id := range foyers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return db.with(ctx).Transaction(func(tx *gorm.DB) error {
		for start := 0; start < len(ids); start += 500 {
			chunk := ids[start:min(start+500, len(ids))]
			if err := tx.Where("foyer_id IN ?", chunk).Delete(&refPersonRow{}).Error; err != nil {
				return fmt.Errorf("replace persons: %w", err)
			}
		}
		for foyer, ys := range years {
			for y := range ys {
				if err := tx.Where("foyer_id = ? AND year = ?", foyer, y).Delete(&refResourceRow{}).Error; err != nil {
					return fmt.Errorf("replace resources: %w", err)
				}
			}
		}
		prow := make([]refPersonRow, len(persons))
		for i, p := range persons {
			prow[i] = refPersonRow{FoyerID: p.FoyerID, Rank: p.Rank, Sex: p.Sex, BirthName: p.BirthName, UsageName: p.UsageName,
				FirstNames: p.FirstNames, BirthDate: p.BirthDate, BirthPlace: p.BirthPlace, NameKey: p.NameKey, FirstNameKey: p.FirstNameKey}
		}
		if len(prow) > 0 {
			if err := tx.CreateInBatches(prow, 500).Error; err != nil {
				return fmt.Errorf("insert persons: %w", err)
			}
		}
		rrow := make([]refResourceRow, len(resources))
		for i, r := range resources {
			rrow[i] = refResourceRow{FoyerID: r.FoyerID, Year: r.Year, Category: r.Category, Beneficiary: r.Beneficiary, Amount: r.Amount}
		}
		if len(rrow) > 0 {
			if err := tx.CreateInBatches(rrow, 1000).Error; err != nil {
				return fmt.Errorf("insert resources: %w", err)
			}
		}
		return db.appendLocked(tx, audit)
	})
}

// CountReferentiel returns the number of declarants and of resources.
func (db *DB) CountReferentiel(ctx context.Context) (persons, resources int64, err error) {
	if err = db.with(ctx).Model(&refPersonRow{}).Count(&persons).Error; err != nil {
		return 0, 0, fmt.Errorf("count persons: %w", err)
	}
	if err = db.with(ctx).Model(&refResourceRow{}).Count(&resources).Error; err != nil {
		return 0, 0, fmt.Errorf("count resources: %w", err)
	}
	return persons, resources, nil
}

// FindPersonsByNames returns the declarants whose normalised birth name
// and first first name are one of the given pairs.
func (db *DB) FindPersonsByNames(ctx context.Context, keys [][2]string) ([]pigp.Person, error) {
	var out []pigp.Person
	for start := 0; start < len(keys); start += 400 {
		chunk := keys[start:min(start+400, len(keys))]
		pairs := make([][]any, len(chunk))
		for i, k := range chunk {
			pairs[i] = []any{k[0], k[1]}
		}
		var rows []refPersonRow
		if err := db.with(ctx).Where("(name_key, first_name_key) IN ?", pairs).
			Order("foyer_id, rank").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("find persons: %w", err)
		}
		for i := range rows {
			out = append(out, rows[i].toPerson())
		}
	}
	return out, nil
}

// FindFoyers returns the foyers with the given ids, with their declarants
// and their resources of year, in the contract's category order. Ids
// without declarants are absent from the map.
func (db *DB) FindFoyers(ctx context.Context, ids []string, year int) (map[string]*pigp.Foyer, error) {
	out := map[string]*pigp.Foyer{}
	order := map[string]int{}
	for i, c := range pigp.Categories {
		order[c] = i
	}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		var prow []refPersonRow
		if err := db.with(ctx).Where("foyer_id IN ?", chunk).Order("foyer_id, rank").Find(&prow).Error; err != nil {
			return nil, fmt.Errorf("find foyers: %w", err)
		}
		for i := range prow {
			f := out[prow[i].FoyerID]
			if f == nil {
				f = &pigp.Foyer{ID: prow[i].FoyerID}
				out[f.ID] = f
			}
			f.Declarants = append(f.Declarants, prow[i].toPerson())
		}
		var rrow []refResourceRow
		if err := db.with(ctx).Where("foyer_id IN ? AND year = ?", chunk, year).Find(&rrow).Error; err != nil {
			return nil, fmt.Errorf("find resources: %w", err)
		}
		sort.Slice(rrow, func(i, j int) bool {
			if rrow[i].FoyerID != rrow[j].FoyerID {
				return rrow[i].FoyerID < rrow[j].FoyerID
			}
			if order[rrow[i].Category] != order[rrow[j].Category] {
				return order[rrow[i].Category] < order[rrow[j].Category]
			}
			return rrow[i].Beneficiary < rrow[j].Beneficiary
		})
		for _, r := range rrow {
			if f := out[r.FoyerID]; f != nil {
				f.Resources = append(f.Resources, pigp.Resource{FoyerID: r.FoyerID, Year: r.Year, Category: r.Category, Beneficiary: r.Beneficiary, Amount: r.Amount})
			}
		}
	}
	return out, nil
}
