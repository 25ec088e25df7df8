package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// Stats returns the monitoring snapshot at now: waiting deposits, available
// responses, the active accounts whose password expires within each of
// days, and the last successful run of each of jobs. Every query is served
// by an index (or reads the small accounts table).
func (db *DB) Stats(ctx context.Context, now time.Time, days []int, jobs []string) (*pigp.Stats, error) {
	s := &pigp.Stats{PasswordsExpiring: map[int]int64{}, JobLastSuccess: map[string]time.Time{}}
	waiting := []string{pigp.DepositReceived, pigp.DepositProcessing}
	if err := db.with(ctx).Model(&depositRow{}).Where("status IN ?", waiting).Count(&s.DepositsWaiting).Error; err != nil {
		return nil, fmt.Errorf("count waiting deposits: %w", err)
	}
	if s.DepositsWaiting > 0 {
		var oldest depositRow
		err := db.with(ctx).Select("deposited_at").Where("status IN ?", waiting).Order("deposited_at").Take(&oldest).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("oldest waiting deposit: %w", err)
		}
		s.OldestWaiting = oldest.DepositedAt.UTC()
	}
	if err := db.with(ctx).Model(&responseRow{}).Where("state = ? AND expires_at > ?", pigp.ResponseAvailable, utc(now)).
		Count(&s.ResponsesAvailable).Error; err != nil {
		return nil, fmt.Errorf("count available responses: %w", err)
	}
	for _, d := range days {
		var n int64
		if err := db.with(ctx).Model(&accountRow{}).Where("state = ? AND password_expires_at > ? AND password_expires_at <= ?",
			pigp.AccountActive, utc(now), utc(now.AddDate(0, 0, d))).Count(&n).Error; err != nil {
			return nil, fmt.Errorf("count expiring passwords: %w", err)
		}
		s.PasswordsExpiring[d] = n
	}
	for _, j := range jobs {
		// The newest successful run, found backwards along (job, started_at).
		var r jobRunRow
		err := db.with(ctx).Select("finished_at").Where("job = ? AND ok = ?", j, true).Order("started_at DESC").Take(&r).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
		case err != nil:
			return nil, fmt.Errorf("last successful run of %s: %w", j, err)
		default:
			s.JobLastSuccess[j] = r.FinishedAt.UTC()
		}
	}
	return s, nil
}
