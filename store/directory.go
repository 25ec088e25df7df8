package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

type groupMappingRow struct {
	GroupKey  string `gorm:"primaryKey"`
	GroupDN   string `gorm:"column:group_dn"`
	SIRET     string `gorm:"column:siret;primaryKey"`
	Role      string
	CreatedAt time.Time
}

func (groupMappingRow) TableName() string { return "ldap_group_mappings" }

func (r *groupMappingRow) mapping() *pigp.GroupMapping {
	return &pigp.GroupMapping{GroupDN: r.GroupDN, GroupKey: r.GroupKey, SIRET: r.SIRET, Role: r.Role, CreatedAt: r.CreatedAt}
}

// UpsertDirectoryAccount creates or refreshes the shadow row of an agent the
// directory just authenticated: name, e-mail, DN, last seen and the SIRETs
// its groups grant. A shadow row keeps its state (an operator may disable
// it) and never holds a password. ECONFLICT when the login belongs to a
// local account: a directory login never takes over a local one.
func (db *DB) UpsertDirectoryAccount(ctx context.Context, d *pigp.DirectoryAccount) (*pigp.Account, error) {
	now := db.now()
	a := &pigp.Account{
		Login: d.Login, Name: d.Name, Email: d.Email, SIRETs: d.SIRETs(), Source: pigp.SourceLDAP,
		DirectoryDN: d.DN, State: pigp.AccountActive, PasswordSetAt: now, PasswordExpiresAt: pigp.NoPasswordExpiry,
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var out *pigp.Account
	var err error
	// Two nodes may see an agent's first login at once: the loser of the
	// insert race finds the winner's row on its second try.
	for try := 0; try < 2; try++ {
		out, err = db.upsertDirectoryAccount(ctx, a, now)
		if pigp.ErrorCode(err) != pigp.ECONFLICT || try == 1 {
			break
		}
		if existing, ferr := db.FindAccountByLogin(ctx, a.Login); ferr == nil && !existing.FromDirectory() {
			break // a real conflict with a local account
		}
	}
	return out, err
}

func (db *DB) upsertDirectoryAccount(ctx context.Context, a *pigp.Account, now time.Time) (*pigp.Account, error) {
	var out *pigp.Account
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		for _, s := range a.SIRETs {
			var n int64
			if err := tx.Model(&organisationRow{}).Where("siret = ?", s).Count(&n).Error; err != nil {
				return fmt.Errorf("check organisation: %w", err)
			}
			if n == 0 {
				return pigp.Errorf(pigp.ENOTFOUND, "organisation %s inconnue", s)
			}
		}
		var row accountRow
		err := tx.Where("login = ?", a.Login).Take(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			row = accountRow{
				Login: a.Login, Name: a.Name, Email: a.Email, PasswordHash: "",
				PasswordSetAt: now, PasswordExpiresAt: pigp.NoPasswordExpiry, State: pigp.AccountActive,
				CreatedAt: now, UpdatedAt: now, Source: pigp.SourceLDAP, DirectoryDN: a.DirectoryDN, LastSeenAt: &now,
			}
			if err := tx.Create(&row).Error; err != nil {
				return conflict(err, fmt.Sprintf("l'identifiant %s existe déjà", a.Login))
			}
		case err != nil:
			return fmt.Errorf("find account: %w", err)
		case row.Source != pigp.SourceLDAP:
			return pigp.Errorf(pigp.ECONFLICT, "l'identifiant %s est celui d'un compte local : il ne peut pas être un compte de l'annuaire", a.Login)
		default:
			if err := tx.Model(&accountRow{}).Where("id = ?", row.ID).Updates(map[string]any{
				"name": a.Name, "email": a.Email, "directory_dn": a.DirectoryDN, "last_seen_at": now, "updated_at": now,
			}).Error; err != nil {
				return fmt.Errorf("update shadow account: %w", err)
			}
			if err := tx.Where("account_id = ?", row.ID).Delete(&accountSIRETRow{}).Error; err != nil {
				return fmt.Errorf("replace shadow account sirets: %w", err)
			}
			row.Name, row.Email, row.DirectoryDN, row.LastSeenAt, row.UpdatedAt = a.Name, a.Email, a.DirectoryDN, &now, now
		}
		for _, s := range a.SIRETs {
			if err := tx.Create(&accountSIRETRow{AccountID: row.ID, SIRET: s}).Error; err != nil {
				return fmt.Errorf("record shadow account siret: %w", err)
			}
		}
		var err2 error
		out, err2 = db.toAccount(ctx, tx, &row)
		return err2
	})
	return out, err
}

// SaveGroupMappings records that each mapping's group grants its SIRET with
// its role, all or nothing; an existing (group, SIRET) mapping takes the
// new role. It returns how many mappings were created and updated.
// ENOTFOUND for an unknown organisation. The audit rows, if any, are
// appended in the same transaction.
func (db *DB) SaveGroupMappings(ctx context.Context, ms []*pigp.GroupMapping, audit ...*pigp.AuditEvent) (created, updated int, err error) {
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			return 0, 0, err
		}
	}
	now := db.now()
	err = db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		created, updated = 0, 0
		for _, m := range ms {
			var n int64
			if err := tx.Model(&organisationRow{}).Where("siret = ?", m.SIRET).Count(&n).Error; err != nil {
				return fmt.Errorf("check organisation: %w", err)
			}
			if n == 0 {
				return pigp.Errorf(pigp.ENOTFOUND, "organisation %s inconnue : créez-la d'abord avec `pigp org add`", m.SIRET)
			}
			res := tx.Model(&groupMappingRow{}).Where("group_key = ? AND siret = ?", m.GroupKey, m.SIRET).
				Updates(map[string]any{"role": m.Role, "group_dn": m.GroupDN})
			if res.Error != nil {
				return fmt.Errorf("update group mapping: %w", res.Error)
			}
			if res.RowsAffected > 0 {
				updated++
				continue
			}
			row := groupMappingRow{GroupKey: m.GroupKey, GroupDN: m.GroupDN, SIRET: m.SIRET, Role: m.Role, CreatedAt: now}
			if err := tx.Create(&row).Error; err != nil {
				return conflict(err, fmt.Sprintf("le groupe %s est déjà associé au SIRET %s", m.GroupDN, m.SIRET))
			}
			m.CreatedAt = now
			created++
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return created, updated, nil
}

// ListGroupMappings returns every mapping, by group then SIRET.
func (db *DB) ListGroupMappings(ctx context.Context) ([]*pigp.GroupMapping, error) {
	var rows []groupMappingRow
	if err := db.with(ctx).Order("group_key, siret").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list group mappings: %w", err)
	}
	out := make([]*pigp.GroupMapping, len(rows))
	for i := range rows {
		out[i] = rows[i].mapping()
	}
	return out, nil
}

// GroupMappingsFor returns the mappings of the groups whose canonical keys
// are given, by group then SIRET (none: an empty list).
func (db *DB) GroupMappingsFor(ctx context.Context, keys []string) ([]*pigp.GroupMapping, error) {
	var out []*pigp.GroupMapping
	for start := 0; start < len(keys); start += 500 {
		var rows []groupMappingRow
		chunk := keys[start:min(start+500, len(keys))]
		if err := db.with(ctx).Where("group_key IN ?", chunk).Order("group_key, siret").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("find group mappings: %w", err)
		}
		for i := range rows {
			out = append(out, rows[i].mapping())
		}
	}
	return out, nil
}

// RemoveGroupMappings removes the mappings of the group with canonical key
// key, only those of sirets when some are given, and returns how many went.
// ENOTFOUND when there was none. The audit rows, if any, are appended in
// the same transaction.
func (db *DB) RemoveGroupMappings(ctx context.Context, key string, sirets []string, audit ...*pigp.AuditEvent) (int64, error) {
	var n int64
	err := db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		q := tx.Where("group_key = ?", key)
		if len(sirets) > 0 {
			q = q.Where("siret IN ?", sirets)
		}
		res := q.Delete(&groupMappingRow{})
		if res.Error != nil {
			return fmt.Errorf("remove group mappings: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			what := "aucune association pour ce groupe"
			if len(sirets) > 0 {
				what += " et le SIRET " + strings.Join(sirets, ", ")
			}
			return pigp.Errorf(pigp.ENOTFOUND, "%s", what)
		}
		n = res.RowsAffected
		return nil
	})
	return n, err
}
