package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pigp/pigp"
)

type banRow struct {
	IP       string `gorm:"column:ip;primaryKey"`
	Reason   string
	Failures int
	BannedAt time.Time
	Until    time.Time
}

func (banRow) TableName() string { return "bans" }

func (r *banRow) ban() *pigp.Ban {
	return &pigp.Ban{IP: r.IP, Reason: r.Reason, Failures: r.Failures, BannedAt: r.BannedAt.UTC(), Until: r.Until.UTC()}
}

// SaveBan creates or replaces the ban of b.IP, with its audit rows, if
// any, in the same transaction: no ban without its row.
func (db *DB) SaveBan(ctx context.Context, b *pigp.Ban, audit ...*pigp.AuditEvent) error {
	row := banRow{IP: b.IP, Reason: b.Reason, Failures: b.Failures, BannedAt: utc(b.BannedAt), Until: utc(b.Until)}
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "ip"}},
			DoUpdates: clause.AssignmentColumns([]string{"reason", "failures", "banned_at", "until"}),
		}).Create(&row).Error
		if err != nil {
			return fmt.Errorf("save ban: %w", err)
		}
		return nil
	})
}

// FindBan returns the ban of ip in force at now; ENOTFOUND when there is none.
func (db *DB) FindBan(ctx context.Context, ip string, now time.Time) (*pigp.Ban, error) {
	var row banRow
	if err := db.with(ctx).Where("ip = ? AND until > ?", ip, utc(now)).Take(&row).Error; err != nil {
		return nil, notFound(err, "aucun bannissement en cours pour cette adresse")
	}
	return row.ban(), nil
}

// ListBans returns the bans in force at now, the longest first.
func (db *DB) ListBans(ctx context.Context, now time.Time) ([]*pigp.Ban, error) {
	var rows []banRow
	if err := db.with(ctx).Where("until > ?", utc(now)).Order("until DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	out := make([]*pigp.Ban, len(rows))
	for i := range rows {
		out[i] = rows[i].ban()
	}
	return out, nil
}

// DeleteBan lifts the ban of ip, with its audit rows, if any, in the same
// transaction; ENOTFOUND when there is none.
func (db *DB) DeleteBan(ctx context.Context, ip string, audit ...*pigp.AuditEvent) error {
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		res := tx.Where("ip = ?", ip).Delete(&banRow{})
		if res.Error != nil {
			return fmt.Errorf("delete ban: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return pigp.Errorf(pigp.ENOTFOUND, "aucun bannissement pour l'adresse %s", ip)
		}
		return nil
	})
}
