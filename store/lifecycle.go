package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// ExpireResponses marks as expired, in one small transaction, up to limit
// available responses whose expiry time is not after now, and returns them.
// The rows change before any content is deleted. When audit is not nil,
// the row audit(r) of each expired response is appended in the same
// transaction.
func (db *DB) ExpireResponses(ctx context.Context, now time.Time, limit int, audit func(r *pigp.Response) *pigp.AuditEvent) ([]*pigp.Response, error) {
	now = utc(now)
	var out []*pigp.Response
	err := db.withAuditFunc(ctx, audit != nil, func(tx *gorm.DB) ([]*pigp.AuditEvent, error) {
		var rows []responseRow
		if err := tx.Where("state = ? AND expires_at <= ?", pigp.ResponseAvailable, now).
			Order("expires_at, id").Limit(limit).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("find expired responses: %w", err)
		}
		if len(rows) == 0 {
			return nil, nil
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		res := tx.Model(&responseRow{}).Where("id IN ? AND state = ?", ids, pigp.ResponseAvailable).
			Updates(map[string]any{"state": pigp.ResponseExpired, "expired_at": now})
		if res.Error != nil {
			return nil, fmt.Errorf("expire responses: %w", res.Error)
		}
		var events []*pigp.AuditEvent
		for i := range rows {
			rows[i].State = pigp.ResponseExpired
			r := rows[i].toResponse()
			out = append(out, r)
			if audit != nil {
				events = append(events, audit(r))
			}
		}
		return events, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withAuditFunc runs fn in a transaction that appends the rows fn returns
// (audited) or, when audit is false, in a plain transaction.
func (db *DB) withAuditFunc(ctx context.Context, audit bool, fn func(tx *gorm.DB) ([]*pigp.AuditEvent, error)) error {
	if audit {
		return db.audited(ctx, nil, fn)
	}
	return db.with(ctx).Transaction(func(tx *gorm.DB) error {
		_, err := fn(tx)
		return err
	})
}

// ResponsesToPurge returns up to limit responses that are no longer
// available and whose content is not recorded as deleted yet.
func (db *DB) ResponsesToPurge(ctx context.Context, limit int) ([]*pigp.Response, error) {
	var rows []responseRow
	if err := db.with(ctx).Where("state <> ? AND content_deleted_at IS NULL", pigp.ResponseAvailable).
		Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find responses to purge: %w", err)
	}
	out := make([]*pigp.Response, len(rows))
	for i := range rows {
		out[i] = rows[i].toResponse()
	}
	return out, nil
}

// MarkContentDeleted records that the content of the responses ids is gone.
func (db *DB) MarkContentDeleted(ctx context.Context, ids []string, now time.Time) error {
	return db.with(ctx).Model(&responseRow{}).Where("id IN ? AND content_deleted_at IS NULL", ids).
		Update("content_deleted_at", utc(now)).Error
}

// ExpirePasswords marks the accounts whose password expired at now and were
// not marked yet, and returns them. Each account is marked in its own
// transaction, with the row audit(account) when audit is not nil.
func (db *DB) ExpirePasswords(ctx context.Context, now time.Time, audit func(a *pigp.Account) *pigp.AuditEvent) ([]*pigp.Account, error) {
	now = utc(now)
	var rows []accountRow
	if err := db.with(ctx).Where("password_expires_at <= ? AND password_expired_at IS NULL AND source = ?", now, pigp.SourceLocal).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find expired passwords: %w", err)
	}
	var out []*pigp.Account
	for i := range rows {
		var marked *pigp.Account
		err := db.withAuditFunc(ctx, audit != nil, func(tx *gorm.DB) ([]*pigp.AuditEvent, error) {
			res := tx.Model(&accountRow{}).Where("id = ? AND password_expired_at IS NULL AND password_expires_at <= ?", rows[i].ID, now).
				Update("password_expired_at", now)
			if res.Error != nil {
				return nil, fmt.Errorf("mark expired password: %w", res.Error)
			}
			if res.RowsAffected != 1 {
				return nil, nil
			}
			a, err := db.toAccount(ctx, tx, &rows[i])
			if err != nil {
				return nil, err
			}
			marked = a
			if audit == nil {
				return nil, nil
			}
			return []*pigp.AuditEvent{audit(a)}, nil
		})
		if err != nil {
			return out, err
		}
		if marked != nil {
			out = append(out, marked)
		}
	}
	return out, nil
}

// AccountsExpiringBetween returns the active accounts whose password expires
// in (from, to].
func (db *DB) AccountsExpiringBetween(ctx context.Context, from, to time.Time) ([]*pigp.Account, error) {
	var rows []accountRow
	if err := db.with(ctx).Where("state = ? AND source = ? AND password_expires_at > ? AND password_expires_at <= ?",
		pigp.AccountActive, pigp.SourceLocal, utc(from), utc(to)).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find expiring passwords: %w", err)
	}
	return db.toAccounts(ctx, rows)
}

// StorageKeysInUse returns which of keys belong to a deposit or a response
// whose content is not recorded as deleted.
func (db *DB) StorageKeysInUse(ctx context.Context, keys []string) (map[string]bool, error) {
	used := map[string]bool{}
	for start := 0; start < len(keys); start += 500 {
		chunk := keys[start:min(start+500, len(keys))]
		var found []string
		if err := db.with(ctx).Model(&depositRow{}).Where("storage_key IN ?", chunk).Pluck("storage_key", &found).Error; err != nil {
			return nil, fmt.Errorf("find deposit keys: %w", err)
		}
		var resp []string
		if err := db.with(ctx).Model(&responseRow{}).Where("storage_key IN ? AND content_deleted_at IS NULL", chunk).Pluck("storage_key", &resp).Error; err != nil {
			return nil, fmt.Errorf("find response keys: %w", err)
		}
		for _, k := range append(found, resp...) {
			used[k] = true
		}
	}
	return used, nil
}

type notificationRow struct {
	ID            int64 `gorm:"primaryKey"`
	Kind          string
	DedupKey      string
	Recipient     string
	Subject       string
	Body          string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        *time.Time
}

func (notificationRow) TableName() string { return "notifications" }

func (r *notificationRow) toNotification() *pigp.Notification {
	return &pigp.Notification{ID: r.ID, Kind: r.Kind, DedupKey: r.DedupKey, Recipient: r.Recipient, Subject: r.Subject,
		Body: r.Body, Status: r.Status, Attempts: r.Attempts, NextAttemptAt: r.NextAttemptAt, LastError: r.LastError,
		CreatedAt: r.CreatedAt, SentAt: r.SentAt}
}

// CreateNotification queues a notification; it returns false, without
// error, when one with the same DedupKey exists already.
func (db *DB) CreateNotification(ctx context.Context, n *pigp.Notification) (bool, error) {
	row := notificationRow{Kind: n.Kind, DedupKey: n.DedupKey, Recipient: n.Recipient, Subject: n.Subject, Body: n.Body,
		Status: n.Status, NextAttemptAt: utc(n.NextAttemptAt), CreatedAt: db.now()}
	if err := db.with(ctx).Create(&row).Error; err != nil {
		if pigp.ErrorCode(conflict(err, "")) == pigp.ECONFLICT {
			return false, nil
		}
		return false, fmt.Errorf("queue notification: %w", err)
	}
	n.ID = row.ID
	return true, nil
}

// DueNotifications returns up to limit pending notifications due at now.
func (db *DB) DueNotifications(ctx context.Context, now time.Time, limit int) ([]*pigp.Notification, error) {
	var rows []notificationRow
	if err := db.with(ctx).Where("status = ? AND next_attempt_at <= ?", pigp.NotificationPending, utc(now)).
		Order("next_attempt_at, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	out := make([]*pigp.Notification, len(rows))
	for i := range rows {
		out[i] = rows[i].toNotification()
	}
	return out, nil
}

// UpdateNotification records the outcome of a sending attempt.
func (db *DB) UpdateNotification(ctx context.Context, n *pigp.Notification) error {
	if len(n.LastError) > 500 {
		n.LastError = n.LastError[:500]
	}
	return db.with(ctx).Model(&notificationRow{}).Where("id = ?", n.ID).Updates(map[string]any{
		"status": n.Status, "attempts": n.Attempts, "next_attempt_at": utc(n.NextAttemptAt),
		"last_error": n.LastError, "sent_at": utcPtr(n.SentAt),
	}).Error
}

// ListNotifications returns the notifications of a kind (all kinds for ""),
// oldest first.
func (db *DB) ListNotifications(ctx context.Context, kind string) ([]*pigp.Notification, error) {
	q := db.with(ctx).Order("id")
	if kind != "" {
		q = q.Where("kind = ?", kind)
	}
	var rows []notificationRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	out := make([]*pigp.Notification, len(rows))
	for i := range rows {
		out[i] = rows[i].toNotification()
	}
	return out, nil
}
