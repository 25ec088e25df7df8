package store

import (
	"context"
	"errors"
	"fmt"
	"os"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// BackupInto writes a consistent copy of the SQLite database to path (which
// must not exist) while others go on reading and writing: VACUUM INTO reads
// one snapshot, the state of the last committed transaction, and writes a
// compact database file. PostgreSQL is backed up with its own tools.
func (db *DB) BackupInto(ctx context.Context, path string) error {
	if db.dialect != SQLite {
		return pigp.Errorf(pigp.EINVALID, "la copie en ligne ne concerne que la base SQLite embarquée")
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup database: %s already exists", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup database: %w", err)
	}
	if err := db.with(ctx).Exec("VACUUM INTO ?", path).Error; err != nil {
		return fmt.Errorf("backup database: %w", err)
	}
	return nil
}

// Content is a stored content a row refers to.
type Content struct {
	Key    string // blob storage key
	SHA256 string // hex, as recorded when it was stored
	Size   int64
	// Required is true when the content must exist: every deposit, and the
	// responses still available. The content of an expired or removed
	// response may already be deleted (its row changes first).
	Required bool
}

// EachContent calls fn for each content that a deposit or a response whose
// content is not recorded as deleted refers to, in batches.
func (db *DB) EachContent(ctx context.Context, fn func(Content) error) error {
	var deps []depositRow
	err := db.with(ctx).Select("id, storage_key, sha256, size").
		FindInBatches(&deps, 1000, func(_ *gorm.DB, _ int) error {
			for _, d := range deps {
				if err := fn(Content{Key: d.StorageKey, SHA256: d.SHA256, Size: d.Size, Required: true}); err != nil {
					return err
				}
			}
			return nil
		}).Error
	if err != nil {
		return fmt.Errorf("list deposit contents: %w", err)
	}
	var resps []responseRow
	err = db.with(ctx).Select("id, storage_key, sha256, size, state").Where("content_deleted_at IS NULL").
		FindInBatches(&resps, 1000, func(_ *gorm.DB, _ int) error {
			for _, r := range resps {
				if err := fn(Content{Key: r.StorageKey, SHA256: r.SHA256, Size: r.Size, Required: r.State == pigp.ResponseAvailable}); err != nil {
					return err
				}
			}
			return nil
		}).Error
	if err != nil {
		return fmt.Errorf("list response contents: %w", err)
	}
	return nil
}
