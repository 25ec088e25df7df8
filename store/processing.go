package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// ClaimDeposit marks the oldest deposit waiting for processing as EN_COURS
// and returns it. A deposit left EN_COURS for longer than stale (its
// processor crashed) is claimed again. ENOTFOUND when nothing waits. Two
// processors never claim the same deposit at once: the claim is a
// conditional update.
func (db *DB) ClaimDeposit(ctx context.Context, now time.Time, stale time.Duration) (*pigp.Deposit, error) {
	now = utc(now)
	for attempt := 0; attempt < 20; attempt++ {
		var row depositRow
		err := db.with(ctx).Where("status = ? OR (status = ? AND claimed_at < ?)",
			pigp.DepositReceived, pigp.DepositProcessing, now.Add(-stale)).
			Order("deposited_at, id").Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, pigp.Errorf(pigp.ENOTFOUND, "aucun dépôt à traiter")
		}
		if err != nil {
			return nil, fmt.Errorf("find deposit to process: %w", err)
		}
		q := db.with(ctx).Model(&depositRow{}).Where("id = ?", row.ID)
		if row.Status == pigp.DepositReceived {
			q = q.Where("status = ?", pigp.DepositReceived)
		} else {
			q = q.Where("status = ? AND claimed_at = ?", pigp.DepositProcessing, row.ClaimedAt)
		}
		res := q.Updates(map[string]any{"status": pigp.DepositProcessing, "claimed_at": now})
		if res.Error != nil {
			return nil, fmt.Errorf("claim deposit: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			return db.FindDeposit(ctx, row.ID)
		}
		// Another processor took it first: look for the next one.
	}
	return nil, pigp.Errorf(pigp.EUNAVAILABLE, "dépôts disputés par plusieurs processus, réessayer")
}

// FinishDeposit records the answer to a claimed deposit in one transaction:
// the response row (its content already durable) and the deposit's final
// status, TRAITE or REJETE. ECONFLICT when the deposit already has an
// answer (another processor finished it first) or is no longer EN_COURS;
// the caller then deletes its content. The audit rows, if any, are
// appended in the same transaction.
func (db *DB) FinishDeposit(ctx context.Context, depositID, status string, r *pigp.Response, now time.Time, audit ...*pigp.AuditEvent) error {
	if status != pigp.DepositProcessed && status != pigp.DepositRejected {
		return pigp.Errorf(pigp.EINVALID, "statut final %q invalide", status)
	}
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		res := tx.Model(&depositRow{}).Where("id = ? AND status = ?", depositID, pigp.DepositProcessing).
			Updates(map[string]any{"status": status, "processed_at": utc(now)})
		if res.Error != nil {
			return fmt.Errorf("finish deposit: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return pigp.Errorf(pigp.ECONFLICT, "le dépôt %s n'est plus en cours de traitement", depositID)
		}
		row := responseRow{
			ID: r.ID, Name: r.Name, SIRET: r.SIRET, DocType: r.DocType, Size: r.Size, SHA256: r.SHA256,
			DepositID: &depositID, State: r.State, AvailableAt: utc(r.AvailableAt), ExpiresAt: utc(r.ExpiresAt), StorageKey: r.StorageKey,
		}
		if err := tx.Create(&row).Error; err != nil {
			return conflict(err, fmt.Sprintf("le dépôt %s a déjà une réponse, ou le nom %s est déjà pris", depositID, r.Name))
		}
		return nil
	})
}

// ResponseForDeposit returns the answer of a deposit, ENOTFOUND if none yet.
func (db *DB) ResponseForDeposit(ctx context.Context, depositID string) (*pigp.Response, error) {
	var row responseRow
	if err := db.with(ctx).Where("deposit_id = ?", depositID).Take(&row).Error; err != nil {
		return nil, notFound(err, "pas encore de réponse pour ce dépôt")
	}
	return row.toResponse(), nil
}

// ResponseNameTaken reports whether siret already has a file named name.
func (db *DB) ResponseNameTaken(ctx context.Context, siret, name string) (bool, error) {
	var n int64
	if err := db.with(ctx).Model(&responseRow{}).Where("siret = ? AND name = ?", siret, name).Count(&n).Error; err != nil {
		return false, fmt.Errorf("check response name: %w", err)
	}
	return n > 0, nil
}
