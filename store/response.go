package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

type responseRow struct {
	ID               string `gorm:"primaryKey"`
	Name             string
	SIRET            string `gorm:"column:siret"`
	DocType          string
	Size             int64
	SHA256           string `gorm:"column:sha256"`
	DepositID        *string
	State            string
	AvailableAt      time.Time
	ExpiresAt        time.Time
	FirstDownloadAt  *time.Time
	RemovedAt        *time.Time
	StorageKey       string
	ExpiredAt        *time.Time
	ContentDeletedAt *time.Time
}

func (responseRow) TableName() string { return "responses" }

func (r *responseRow) toResponse() *pigp.Response {
	out := &pigp.Response{
		ID: r.ID, Name: r.Name, SIRET: r.SIRET, DocType: r.DocType, Size: r.Size, SHA256: r.SHA256,
		State: r.State, AvailableAt: r.AvailableAt, ExpiresAt: r.ExpiresAt,
		FirstDownloadAt: r.FirstDownloadAt, RemovedAt: r.RemovedAt, StorageKey: r.StorageKey,
	}
	if r.DepositID != nil {
		out.DepositID = *r.DepositID
	}
	return out
}

type downloadRow struct {
	ID           int64 `gorm:"primaryKey"`
	ResponseID   string
	SIRET        string `gorm:"column:siret"`
	AccountID    int64
	Protocol     string
	ClientIP     string
	DownloadedAt time.Time
}

func (downloadRow) TableName() string { return "downloads" }

// CreateResponse records a response whose content is already durable,
// with its audit rows, if any, in the same transaction. ECONFLICT if the
// SIRET already has a file with that name.
func (db *DB) CreateResponse(ctx context.Context, r *pigp.Response, audit ...*pigp.AuditEvent) error {
	row := responseRow{
		ID: r.ID, Name: r.Name, SIRET: r.SIRET, DocType: r.DocType, Size: r.Size, SHA256: r.SHA256,
		State: r.State, AvailableAt: utc(r.AvailableAt), ExpiresAt: utc(r.ExpiresAt), StorageKey: r.StorageKey,
	}
	if r.DepositID != "" {
		row.DepositID = &r.DepositID
	}
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return conflict(err, fmt.Sprintf("un fichier %s existe déjà pour le SIRET %s", r.Name, r.SIRET))
		}
		return nil
	})
}

// FindResponse returns the response with the given id, ENOTFOUND if none.
func (db *DB) FindResponse(ctx context.Context, id string) (*pigp.Response, error) {
	var row responseRow
	if err := db.with(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, notFound(err, "fichier introuvable")
	}
	return row.toResponse(), nil
}

// FindAvailableResponse returns the response named name of one of sirets
// that is available at now, ENOTFOUND if none.
func (db *DB) FindAvailableResponse(ctx context.Context, sirets []string, name string, now time.Time) (*pigp.Response, error) {
	var row responseRow
	err := db.with(ctx).Where("siret IN ? AND name = ? AND state = ? AND expires_at > ?",
		sirets, name, pigp.ResponseAvailable, utc(now)).Order("available_at DESC").Take(&row).Error
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("fichier %s introuvable ou expiré", name))
	}
	return row.toResponse(), nil
}

// ListAvailableResponses returns the responses of sirets available at now,
// newest first.
func (db *DB) ListAvailableResponses(ctx context.Context, sirets []string, now time.Time) ([]*pigp.Response, error) {
	var rows []responseRow
	err := db.with(ctx).Where("siret IN ? AND state = ? AND expires_at > ?", sirets, pigp.ResponseAvailable, utc(now)).
		Order("available_at DESC, name").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list responses: %w", err)
	}
	out := make([]*pigp.Response, len(rows))
	for i := range rows {
		out[i] = rows[i].toResponse()
	}
	return out, nil
}

// RecordDownload records a download, sets the response's first download
// time if it is not set yet and appends the audit rows, if any, in one
// transaction. It fills d.ID.
func (db *DB) RecordDownload(ctx context.Context, d *pigp.Download, audit ...*pigp.AuditEvent) error {
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		row := downloadRow{ResponseID: d.ResponseID, SIRET: d.SIRET, AccountID: d.AccountID,
			Protocol: d.Protocol, ClientIP: d.ClientIP, DownloadedAt: utc(d.DownloadedAt)}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("record download: %w", err)
		}
		if err := tx.Model(&responseRow{}).Where("id = ? AND first_download_at IS NULL", d.ResponseID).
			Update("first_download_at", utc(d.DownloadedAt)).Error; err != nil {
			return fmt.Errorf("set first download: %w", err)
		}
		d.ID = row.ID
		return nil
	})
}

// MarkResponseRemoved hides an available response that was downloaded at
// least once, with its audit rows, if any, in the same transaction.
// EFORBIDDEN if it was never downloaded, ENOTFOUND if it is not available.
func (db *DB) MarkResponseRemoved(ctx context.Context, id string, now time.Time, audit ...*pigp.AuditEvent) error {
	errNone := errors.New("not removed")
	err := db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		res := tx.Model(&responseRow{}).
			Where("id = ? AND state = ? AND first_download_at IS NOT NULL", id, pigp.ResponseAvailable).
			Updates(map[string]any{"state": pigp.ResponseRemoved, "removed_at": utc(now)})
		if res.Error != nil {
			return fmt.Errorf("remove response: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return errNone
		}
		return nil
	})
	if !errors.Is(err, errNone) {
		return err
	}
	r, err := db.FindResponse(ctx, id)
	if err != nil {
		return err
	}
	if r.State != pigp.ResponseAvailable {
		return pigp.Errorf(pigp.ENOTFOUND, "fichier %s introuvable", r.Name)
	}
	return pigp.Errorf(pigp.EFORBIDDEN, "suppression refusée : le fichier %s n'a pas encore été téléchargé", r.Name)
}

// downloadWithResponse is a download joined with its response and account.
type downloadWithResponse struct {
	Row     downloadRow `gorm:"embedded"`
	Name    string
	DocType string
	Size    int64
	Login   string
}

// CountDownloads returns how many downloads match f (ignoring Offset and Limit).
func (db *DB) CountDownloads(ctx context.Context, f pigp.HistoryFilter) (int64, error) {
	q := db.with(ctx).Model(&downloadRow{}).Where("siret IN ?", f.SIRETs)
	if !f.Since.IsZero() {
		q = q.Where("downloaded_at >= ?", utc(f.Since))
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count downloads: %w", err)
	}
	return n, nil
}

// ListDownloads returns the downloads matching f, newest first.
func (db *DB) ListDownloads(ctx context.Context, f pigp.HistoryFilter) ([]*pigp.Download, error) {
	q := db.with(ctx).Table("downloads").
		Select("downloads.*, responses.name AS name, responses.doc_type AS doc_type, responses.size AS size, accounts.login AS login").
		Joins("JOIN responses ON responses.id = downloads.response_id").
		Joins("JOIN accounts ON accounts.id = downloads.account_id").
		Where("downloads.siret IN ?", f.SIRETs)
	if !f.Since.IsZero() {
		q = q.Where("downloads.downloaded_at >= ?", utc(f.Since))
	}
	q = q.Order("downloads.downloaded_at DESC, downloads.id DESC").Offset(f.Offset)
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	var rows []downloadWithResponse
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list downloads: %w", err)
	}
	out := make([]*pigp.Download, len(rows))
	for i, r := range rows {
		out[i] = &pigp.Download{
			ID: r.Row.ID, ResponseID: r.Row.ResponseID, ResponseName: r.Name, DocType: r.DocType, Size: r.Size,
			SIRET: r.Row.SIRET, AccountID: r.Row.AccountID, Login: r.Login, Protocol: r.Row.Protocol,
			ClientIP: r.Row.ClientIP, DownloadedAt: r.Row.DownloadedAt,
		}
	}
	return out, nil
}

// CreateResponses records many responses in one transaction (bulk loads:
// migrations of existing files, benchmarks). Contents must be durable.
func (db *DB) CreateResponses(ctx context.Context, rs []*pigp.Response) error {
	rows := make([]responseRow, len(rs))
	for i, r := range rs {
		rows[i] = responseRow{ID: r.ID, Name: r.Name, SIRET: r.SIRET, DocType: r.DocType, Size: r.Size, SHA256: r.SHA256,
			State: r.State, AvailableAt: utc(r.AvailableAt), ExpiresAt: utc(r.ExpiresAt), StorageKey: r.StorageKey}
		if r.DepositID != "" {
			rows[i].DepositID = &rs[i].DepositID
		}
	}
	if err := db.with(ctx).CreateInBatches(rows, 500).Error; err != nil {
		return conflict(err, "réponse en double")
	}
	return nil
}
