package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/pigp/pigp"
)

// campaignRow is a campaign window set by an operator; its days are kept as
// written (2006-01-02, Paris calendar days), never as instants.
type campaignRow struct {
	Year      int `gorm:"primaryKey;autoIncrement:false"`
	Opens     string
	Closes    string
	UpdatedAt time.Time
}

func (campaignRow) TableName() string { return "campaign_windows" }

// ListCampaigns returns the campaign windows recorded in the database,
// ordered by year.
func (db *DB) ListCampaigns(ctx context.Context) ([]pigp.Campaign, error) {
	var rows []campaignRow
	if err := db.with(ctx).Order("year").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	out := make([]pigp.Campaign, 0, len(rows))
	for _, r := range rows {
		c, err := pigp.NewCampaign(r.Year, r.Opens, r.Closes)
		if err != nil {
			return nil, fmt.Errorf("campaign %d in the database: %w", r.Year, err)
		}
		c.Source = pigp.CampaignFromDatabase
		out = append(out, c)
	}
	return out, nil
}

// SetCampaign records (or replaces) the window of c.Year.
func (db *DB) SetCampaign(ctx context.Context, c pigp.Campaign) error {
	row := campaignRow{Year: c.Year, Opens: c.Opens.In(pigp.Paris).Format(time.DateOnly),
		Closes: c.Closes.In(pigp.Paris).Format(time.DateOnly), UpdatedAt: db.now()}
	err := db.with(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "year"}},
		DoUpdates: clause.AssignmentColumns([]string{"opens", "closes", "updated_at"})}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("set campaign %d: %w", c.Year, err)
	}
	return nil
}

// DeleteCampaign removes the window of year; ENOTFOUND if there is none.
func (db *DB) DeleteCampaign(ctx context.Context, year int) error {
	res := db.with(ctx).Where("year = ?", year).Delete(&campaignRow{})
	if res.Error != nil {
		return fmt.Errorf("delete campaign %d: %w", year, res.Error)
	}
	if res.RowsAffected == 0 {
		return pigp.Errorf(pigp.ENOTFOUND, "aucune fenêtre enregistrée pour la campagne %d", year)
	}
	return nil
}
