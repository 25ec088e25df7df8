package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// portalSessionRow is a portal session. caller holds the JSON of the
// pigp.Caller (login, name, SIRETs, password dates) without the request's
// address and protocol; account_id and login are columns of their own so
// that an account's sessions are revoked in one statement.
type portalSessionRow struct {
	TokenHash  string `gorm:"primaryKey"`
	AccountID  int64
	Login      string
	Caller     string
	CSRFSecret string `gorm:"column:csrf_secret"`
	MustChange bool
	Flash      string
	CreatedAt  time.Time `gorm:"autoCreateTime:false"`
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

func (portalSessionRow) TableName() string { return "portal_sessions" }

func (r *portalSessionRow) session() (*pigp.PortalSession, error) {
	var c pigp.Caller
	if err := json.Unmarshal([]byte(r.Caller), &c); err != nil {
		return nil, fmt.Errorf("decode portal session: %w", err)
	}
	c.AccountID, c.Login = r.AccountID, r.Login
	return &pigp.PortalSession{TokenHash: r.TokenHash, Caller: &c, CSRFSecret: r.CSRFSecret, MustChange: r.MustChange,
		Flash: r.Flash, CreatedAt: r.CreatedAt.UTC(), LastSeenAt: r.LastSeenAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()}, nil
}

func encodeCaller(c *pigp.Caller) (string, error) {
	kept := *c
	kept.RemoteIP, kept.Protocol = "", ""
	b, err := json.Marshal(&kept)
	if err != nil {
		return "", fmt.Errorf("encode portal session: %w", err)
	}
	return string(b), nil
}

// CreateSession stores a new portal session.
func (db *DB) CreateSession(ctx context.Context, s *pigp.PortalSession) error {
	caller, err := encodeCaller(s.Caller)
	if err != nil {
		return err
	}
	row := portalSessionRow{TokenHash: s.TokenHash, AccountID: s.Caller.AccountID, Login: s.Caller.Login, Caller: caller,
		CSRFSecret: s.CSRFSecret, MustChange: s.MustChange, Flash: s.Flash, CreatedAt: utc(s.CreatedAt),
		LastSeenAt: utc(s.LastSeenAt), ExpiresAt: utc(s.ExpiresAt)}
	if err := db.with(ctx).Create(&row).Error; err != nil {
		return conflict(err, "session en double")
	}
	return nil
}

// FindSession returns the session whose token has the given hash;
// ENOTFOUND when there is none (never created, revoked or swept).
func (db *DB) FindSession(ctx context.Context, tokenHash string) (*pigp.PortalSession, error) {
	var row portalSessionRow
	if err := db.with(ctx).Where("token_hash = ?", tokenHash).Take(&row).Error; err != nil {
		return nil, notFound(err, "session inconnue")
	}
	return row.session()
}

// TouchSession records a request of the session: its last-seen time and
// new expiry. ENOTFOUND when the session is gone.
func (db *DB) TouchSession(ctx context.Context, tokenHash string, lastSeen, expiresAt time.Time) error {
	return db.updateSession(ctx, db.with(ctx).Where("token_hash = ?", tokenHash),
		map[string]any{"last_seen_at": utc(lastSeen), "expires_at": utc(expiresAt)})
}

// UpdateSession replaces the session's caller, must-change flag and flash
// message. ENOTFOUND when the session is gone.
func (db *DB) UpdateSession(ctx context.Context, s *pigp.PortalSession) error {
	caller, err := encodeCaller(s.Caller)
	if err != nil {
		return err
	}
	return db.updateSession(ctx, db.with(ctx).Where("token_hash = ?", s.TokenHash),
		map[string]any{"caller": caller, "must_change": s.MustChange, "flash": s.Flash})
}

// TakeFlash clears the session's flash message if it is still flash (a
// message set meanwhile by another request stays for the next page).
func (db *DB) TakeFlash(ctx context.Context, tokenHash, flash string) error {
	err := db.with(ctx).Model(&portalSessionRow{}).Where("token_hash = ? AND flash = ?", tokenHash, flash).
		Update("flash", "").Error
	if err != nil {
		return fmt.Errorf("clear flash message: %w", err)
	}
	return nil
}

func (db *DB) updateSession(_ context.Context, q *gorm.DB, values map[string]any) error {
	res := q.Model(&portalSessionRow{}).Updates(values)
	if res.Error != nil {
		return fmt.Errorf("update portal session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return pigp.Errorf(pigp.ENOTFOUND, "session inconnue")
	}
	return nil
}

// DeleteSession ends one session (no error when it is already gone).
func (db *DB) DeleteSession(ctx context.Context, tokenHash string) error {
	if err := db.with(ctx).Where("token_hash = ?", tokenHash).Delete(&portalSessionRow{}).Error; err != nil {
		return fmt.Errorf("delete portal session: %w", err)
	}
	return nil
}

// DeleteAccountSessions ends every session of the account and returns how
// many there were.
func (db *DB) DeleteAccountSessions(ctx context.Context, accountID int64) (int, error) {
	return deleteAccountSessions(db.with(ctx), accountID)
}

func deleteAccountSessions(tx *gorm.DB, accountID int64) (int, error) {
	res := tx.Where("account_id = ?", accountID).Delete(&portalSessionRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("revoke portal sessions: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

// EvictSessions ends the account's sessions beyond its keep most recently
// used live ones, and its expired ones; it returns the live ones it ended.
// Two logins at once on two nodes may each keep keep others: the bound is
// exact again at the next login.
func (db *DB) EvictSessions(ctx context.Context, accountID int64, keep int, now time.Time) ([]*pigp.PortalSession, error) {
	var ended []*pigp.PortalSession
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []portalSessionRow
		if err := tx.Where("account_id = ?", accountID).Order("last_seen_at DESC").Find(&rows).Error; err != nil {
			return fmt.Errorf("list portal sessions: %w", err)
		}
		var gone []string
		live := 0
		for i := range rows {
			r := &rows[i]
			if !r.ExpiresAt.After(utc(now)) {
				gone = append(gone, r.TokenHash)
				continue
			}
			if live++; live <= keep {
				continue
			}
			gone = append(gone, r.TokenHash)
			if s, err := r.session(); err == nil {
				ended = append(ended, s)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		return tx.Where("token_hash IN ?", gone).Delete(&portalSessionRow{}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("evict portal sessions: %w", err)
	}
	return ended, nil
}

// CountAccountSessions returns how many sessions of the account are live
// at now.
func (db *DB) CountAccountSessions(ctx context.Context, accountID int64, now time.Time) (int, error) {
	var n int64
	if err := db.with(ctx).Model(&portalSessionRow{}).Where("account_id = ? AND expires_at > ?", accountID, utc(now)).
		Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count portal sessions: %w", err)
	}
	return int(n), nil
}

// SweepSessions deletes the sessions expired at now and returns how many.
func (db *DB) SweepSessions(ctx context.Context, now time.Time) (int, error) {
	res := db.with(ctx).Where("expires_at <= ?", utc(now)).Delete(&portalSessionRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("sweep portal sessions: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}
