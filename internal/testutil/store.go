package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/store"
)

// AuditKey returns the audit key of test databases (a fixed one, so that
// several connections to one database agree).
func AuditKey() *pigp.AuditKey {
	k, err := pigp.NewAuditKey([]byte("pigp test audit key, never used in production"))
	if err != nil {
		panic(err)
	}
	return k
}

// NewStore returns a migrated database of the given kind ("sqlite" or
// "postgres", a fresh database either way) and a content store, both
// cleaned up when the test ends.
func NewStore(tb testing.TB, kind string) (*store.DB, *blob.Store) {
	tb.Helper()
	db, blobs, _ := NewStoreDSN(tb, kind)
	return db, blobs
}

// NewStoreDSN is NewStore that also returns the database's DSN (for
// FailAuditInserts).
func NewStoreDSN(tb testing.TB, kind string) (*store.DB, *blob.Store, string) {
	tb.Helper()
	ctx := context.Background()
	dialect, dsn := store.SQLite, filepath.Join(tb.TempDir(), "pigp.db")
	if kind == "postgres" {
		dialect, dsn = store.Postgres, NewPostgresDB(tb)
	}
	db, err := store.Open(ctx, dialect, dsn, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.UseAuditKey(ctx, AuditKey()); err != nil {
		tb.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(tb.TempDir(), "store"))
	if err != nil {
		tb.Fatal(err)
	}
	return db, blobs, dsn
}
