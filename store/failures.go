package store

import (
	"context"
	"fmt"
	"time"
)

// loginFailureRow is one shared failure counter of the login guard (an
// address, an address and login pair, or a login). expires_at is when the
// row stops mattering: the later of the end of its counting window and
// the end of its block; the housekeeping job deletes it then.
type loginFailureRow struct {
	CounterKey   string `gorm:"primaryKey"`
	Failures     int
	LastAt       time.Time
	BlockedUntil *time.Time
	ExpiresAt    time.Time
}

func (loginFailureRow) TableName() string { return "login_failures" }

// CountFailure counts one failure of key at now and returns the key's new
// count. A key quiet for longer than forget starts again at 1 and its
// block is forgotten. The increment is one statement, atomic on both
// databases: concurrent failures on several nodes each get their own count.
func (db *DB) CountFailure(ctx context.Context, key string, now time.Time, forget time.Duration) (int, error) {
	now = utc(now)
	stale, expires := now.Add(-forget), now.Add(forget)
	var n int
	err := db.with(ctx).Raw(`INSERT INTO login_failures (counter_key, failures, last_at, blocked_until, expires_at)
VALUES (?, 1, ?, NULL, ?)
ON CONFLICT (counter_key) DO UPDATE SET
	failures = CASE WHEN login_failures.last_at < ? THEN 1 ELSE login_failures.failures + 1 END,
	blocked_until = CASE WHEN login_failures.last_at < ? THEN NULL ELSE login_failures.blocked_until END,
	last_at = excluded.last_at,
	expires_at = CASE WHEN login_failures.blocked_until IS NOT NULL AND login_failures.blocked_until > excluded.expires_at
		THEN login_failures.blocked_until ELSE excluded.expires_at END
RETURNING failures`, key, now, expires, stale, stale).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count login failure: %w", err)
	}
	if n < 1 {
		return 0, fmt.Errorf("count login failure: no count returned")
	}
	return n, nil
}

// BlockKey blocks key until until, unless it is already blocked longer
// (two nodes blocking at once keep the longer block).
func (db *DB) BlockKey(ctx context.Context, key string, until time.Time) error {
	until = utc(until)
	err := db.with(ctx).Exec(`UPDATE login_failures SET blocked_until = ?,
	expires_at = CASE WHEN expires_at < ? THEN ? ELSE expires_at END
WHERE counter_key = ? AND (blocked_until IS NULL OR blocked_until < ?)`, until, until, until, key, until).Error
	if err != nil {
		return fmt.Errorf("block login key: %w", err)
	}
	return nil
}

// BlockedUntil returns the latest end of block among keys that is after
// now (the zero time when none is blocked).
func (db *DB) BlockedUntil(ctx context.Context, keys []string, now time.Time) (time.Time, error) {
	var rows []loginFailureRow
	if err := db.with(ctx).Where("counter_key IN ? AND blocked_until > ?", keys, utc(now)).Find(&rows).Error; err != nil {
		return time.Time{}, fmt.Errorf("read login blocks: %w", err)
	}
	var until time.Time
	for _, r := range rows {
		if r.BlockedUntil != nil && r.BlockedUntil.After(until) {
			until = r.BlockedUntil.UTC()
		}
	}
	return until, nil
}

// ClearFailures forgets key's failures and block.
func (db *DB) ClearFailures(ctx context.Context, key string) error {
	if err := db.with(ctx).Where("counter_key = ?", key).Delete(&loginFailureRow{}).Error; err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// SweepFailures deletes the counters that no longer matter at now and
// returns how many.
func (db *DB) SweepFailures(ctx context.Context, now time.Time) (int, error) {
	res := db.with(ctx).Where("expires_at <= ?", utc(now)).Delete(&loginFailureRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("sweep login failures: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}
