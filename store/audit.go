package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// The audit trail is append-only and hash-chained: row n carries the hash
// of row n-1 (PrevHash) and its own hash over pigp.AuditEvent.Canonical.
// Ids are dense (1, 2, 3, …) and given by the chain, so a deleted or
// inserted row breaks it. The one-row audit_head table holds the last id
// and hash: every append first updates it, which takes SQLite's write lock
// or PostgreSQL's row lock before the previous hash is read, so concurrent
// writers, on one node or several, queue up instead of forking the chain.
// The head also reveals a truncated tail.

type auditRow struct {
	ID       int64 `gorm:"primaryKey;autoIncrement:false"`
	At       time.Time
	Action   string
	Outcome  string
	Login    string
	SIRET    string `gorm:"column:siret"`
	IP       string `gorm:"column:ip"`
	Protocol string
	Object   string
	SHA256   string `gorm:"column:sha256"`
	Detail   string
	PrevHash string
	Hash     string
}

func (auditRow) TableName() string { return "audit_events" }

type auditHeadRow struct {
	ID       int64 `gorm:"primaryKey;autoIncrement:false"`
	LastID   int64
	LastHash string
}

func (auditHeadRow) TableName() string { return "audit_head" }

func (r *auditRow) event() *pigp.AuditEvent {
	return &pigp.AuditEvent{ID: r.ID, Time: r.At.UTC(), Action: r.Action, Outcome: r.Outcome, Login: r.Login,
		SIRET: r.SIRET, IP: r.IP, Protocol: r.Protocol, Object: r.Object, SHA256: r.SHA256, Detail: r.Detail,
		PrevHash: r.PrevHash, Hash: r.Hash}
}

// Audit appends e to the audit trail and sets its ID, time (when zero),
// PrevHash and Hash. It implements pigp.Auditor.
func (db *DB) Audit(ctx context.Context, e *pigp.AuditEvent) error {
	return db.AuditMany(ctx, []*pigp.AuditEvent{e})
}

// AuditMany appends events to the audit trail in one transaction, in order,
// chaining each to the previous one (batch jobs: one lock and one commit
// for many rows).
func (db *DB) AuditMany(ctx context.Context, events []*pigp.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = db.now()
		}
		e.Normalize()
	}
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		// Lock first (write lock / row lock), then read the head.
		if err := tx.Exec("UPDATE audit_head SET last_id = last_id WHERE id = 1").Error; err != nil {
			return err
		}
		var head auditHeadRow
		if err := tx.Where("id = ?", 1).Take(&head).Error; err != nil {
			return err
		}
		rows := make([]auditRow, len(events))
		last, prev := head.LastID, head.LastHash
		for i, e := range events {
			last++
			e.ID, e.PrevHash = last, prev
			e.Hash = e.ComputeHash()
			prev = e.Hash
			rows[i] = auditRow{ID: e.ID, At: e.Time, Action: e.Action, Outcome: e.Outcome, Login: e.Login, SIRET: e.SIRET,
				IP: e.IP, Protocol: e.Protocol, Object: e.Object, SHA256: e.SHA256, Detail: e.Detail,
				PrevHash: e.PrevHash, Hash: e.Hash}
		}
		if err := tx.CreateInBatches(rows, 200).Error; err != nil {
			return err
		}
		return tx.Model(&auditHeadRow{}).Where("id = ?", 1).
			Updates(map[string]any{"last_id": last, "last_hash": prev}).Error
	})
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// ListAudit returns the audit rows of the filter's time window in chain order.
func (db *DB) ListAudit(ctx context.Context, f pigp.AuditFilter) ([]*pigp.AuditEvent, error) {
	q := db.with(ctx).Order("id")
	if !f.From.IsZero() {
		q = q.Where("at >= ?", utc(f.From))
	}
	if !f.To.IsZero() {
		q = q.Where("at < ?", utc(f.To))
	}
	var rows []auditRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := make([]*pigp.AuditEvent, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// maxAuditProblems bounds the problems a verification lists.
const maxAuditProblems = 20

// VerifyAudit walks the whole chain and reports every break it finds: a
// row whose hash does not match its content (edited), a gap in the ids
// (deleted), a previous hash that does not match (deleted, inserted or
// reordered) and a head that does not match the last row (truncated).
func (db *DB) VerifyAudit(ctx context.Context) (*pigp.AuditReport, error) {
	rep := &pigp.AuditReport{}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxAuditProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	var rows []auditRow
	prevID, prevHash := int64(0), ""
	err := db.with(ctx).Order("id").FindInBatches(&rows, 1000, func(tx *gorm.DB, _ int) error {
		for i := range rows {
			e := rows[i].event()
			rep.Rows++
			if e.ID != prevID+1 {
				problem("ligne %d : rupture de séquence après la ligne %d (ligne supprimée ou insérée)", e.ID, prevID)
			}
			if e.PrevHash != prevHash {
				problem("ligne %d : l'empreinte précédente ne correspond pas à la ligne %d", e.ID, prevID)
			}
			if h := e.ComputeHash(); h != e.Hash {
				problem("ligne %d : contenu modifié (empreinte recalculée %s…, enregistrée %.12s…)", e.ID, h[:12], e.Hash)
			}
			prevID, prevHash = e.ID, e.Hash
		}
		return nil
	}).Error
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	var head auditHeadRow
	if err := db.with(ctx).Where("id = ?", 1).Take(&head).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			problem("tête de chaîne absente")
			return rep, nil
		}
		return nil, fmt.Errorf("read audit head: %w", err)
	}
	if head.LastID != prevID || head.LastHash != prevHash {
		problem("la tête de chaîne (ligne %d) ne correspond pas à la dernière ligne (%d) : fin de journal supprimée ?", head.LastID, prevID)
	}
	rep.LastID, rep.LastHash = prevID, prevHash
	return rep, nil
}
