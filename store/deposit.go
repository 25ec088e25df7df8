package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

type depositRow struct {
	ID           string `gorm:"primaryKey"`
	ExternalName string
	InternalName string
	SIRET        string `gorm:"column:siret"`
	AccountID    int64
	Size         int64
	SHA256       string `gorm:"column:sha256"`
	Status       string
	ClientIP     string
	Protocol     string
	DepositedAt  time.Time
	StorageKey   string
	ClaimedAt    *time.Time
	ProcessedAt  *time.Time
}

func (depositRow) TableName() string { return "deposits" }

// depositWithLogin is a deposit row joined with its account's login.
type depositWithLogin struct {
	Row   depositRow `gorm:"embedded"`
	Login string
}

func (r *depositWithLogin) toDeposit() *pigp.Deposit {
	d := &r.Row
	return &pigp.Deposit{
		ID: d.ID, ExternalName: d.ExternalName, InternalName: d.InternalName, SIRET: d.SIRET,
		AccountID: d.AccountID, Login: r.Login, Size: d.Size, SHA256: d.SHA256, Status: d.Status,
		ClientIP: d.ClientIP, Protocol: d.Protocol, DepositedAt: d.DepositedAt, StorageKey: d.StorageKey,
	}
}

// CreateDeposit records a deposit whose content is already durable, with
// its audit rows, if any, in the same transaction.
func (db *DB) CreateDeposit(ctx context.Context, d *pigp.Deposit, audit ...*pigp.AuditEvent) error {
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error { return createDeposit(tx, d) })
}

func createDeposit(tx *gorm.DB, d *pigp.Deposit) error {
	row := depositRow{
		ID: d.ID, ExternalName: d.ExternalName, InternalName: d.InternalName, SIRET: d.SIRET,
		AccountID: d.AccountID, Size: d.Size, SHA256: d.SHA256, Status: d.Status, ClientIP: d.ClientIP,
		Protocol: d.Protocol, DepositedAt: utc(d.DepositedAt), StorageKey: d.StorageKey,
	}
	if err := tx.Create(&row).Error; err != nil {
		return conflict(err, "identifiant de dépôt en double")
	}
	return nil
}

// CreateDepositOnce records d (its content already durable) and its audit
// row ev in one transaction — unless the same account already deposited
// the same external name with the same SHA-256 at or after since: then
// nothing is created, the row dup(existing) is recorded instead and the
// existing deposit is returned, with Duplicate set. The check is
// serialised (under the audit chain's lock on SQLite, under a lock of the
// account and name on PostgreSQL), so two retries racing on two nodes make
// one deposit. A zero since disables the check; a nil ev (or dup result)
// records no row.
func (db *DB) CreateDepositOnce(ctx context.Context, d *pigp.Deposit, since time.Time, ev *pigp.AuditEvent,
	dup func(existing *pigp.Deposit) *pigp.AuditEvent) (*pigp.Deposit, error) {
	var existing *pigp.Deposit
	err := db.audited(ctx, nil, func(tx *gorm.DB) ([]*pigp.AuditEvent, error) {
		if !since.IsZero() && db.dialect == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?, ?)", advisoryDeposits, nameLock(d.AccountID, d.ExternalName)).Error; err != nil {
				return nil, fmt.Errorf("lock deposit name: %w", err)
			}
		}
		if !since.IsZero() {
			var row depositWithLogin
			err := tx.Table("deposits").Select("deposits.*, accounts.login AS login").
				Joins("JOIN accounts ON accounts.id = deposits.account_id").
				Where("deposits.account_id = ? AND deposits.external_name = ? AND deposits.sha256 = ? AND deposits.deposited_at >= ?",
					d.AccountID, d.ExternalName, d.SHA256, utc(since)).
				Order("deposits.deposited_at DESC, deposits.id DESC").Take(&row).Error
			switch {
			case err == nil:
				existing = row.toDeposit()
				existing.Duplicate = true
				return []*pigp.AuditEvent{dup(existing)}, nil
			case !errors.Is(err, gorm.ErrRecordNotFound):
				return nil, fmt.Errorf("find duplicate deposit: %w", err)
			}
		}
		if err := createDeposit(tx, d); err != nil {
			return nil, err
		}
		return []*pigp.AuditEvent{ev}, nil
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}

// advisoryDeposits is the first key of the PostgreSQL advisory locks that
// serialise the uploads of one account under one name.
const advisoryDeposits = 7411002

// nameLock returns the second key of that lock: a 32-bit hash of the
// account and the name (a collision only serialises two unrelated names).
func nameLock(account int64, name string) int32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d\x00%s", account, name)
	return int32(h.Sum32())
}

func (db *DB) depositQuery(ctx context.Context) *gorm.DB {
	return db.with(ctx).Table("deposits").
		Select("deposits.*, accounts.login AS login").
		Joins("JOIN accounts ON accounts.id = deposits.account_id")
}

// FindDeposit returns the deposit with the given id, ENOTFOUND if none.
func (db *DB) FindDeposit(ctx context.Context, id string) (*pigp.Deposit, error) {
	var row depositWithLogin
	if err := db.depositQuery(ctx).Where("deposits.id = ?", id).Take(&row).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("dépôt %s inconnu", id))
	}
	return row.toDeposit(), nil
}

// ListDeposits returns the deposits matching f, newest first.
func (db *DB) ListDeposits(ctx context.Context, f pigp.DepositFilter) ([]*pigp.Deposit, error) {
	q := db.depositQuery(ctx).Where("deposits.siret IN ?", f.SIRETs)
	if len(f.Statuses) > 0 {
		q = q.Where("deposits.status IN ?", f.Statuses)
	}
	if !f.Since.IsZero() {
		q = q.Where("deposits.deposited_at >= ?", utc(f.Since))
	}
	q = q.Order("deposits.deposited_at DESC, deposits.id DESC").Offset(f.Offset)
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	var rows []depositWithLogin
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list deposits: %w", err)
	}
	out := make([]*pigp.Deposit, len(rows))
	for i := range rows {
		out[i] = rows[i].toDeposit()
	}
	return out, nil
}

// CountDeposits returns how many deposits match f (ignoring Offset and Limit).
func (db *DB) CountDeposits(ctx context.Context, f pigp.DepositFilter) (int64, error) {
	q := db.with(ctx).Model(&depositRow{}).Where("siret IN ?", f.SIRETs)
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if !f.Since.IsZero() {
		q = q.Where("deposited_at >= ?", utc(f.Since))
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count deposits: %w", err)
	}
	return n, nil
}
