// Package store keeps pigp's records in a relational database through gorm:
// PostgreSQL in production, SQLite (pure Go) by default. It is the only
// package that imports gorm; its row structs are unexported and mapped to
// pigp types.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pigp/pigp"
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is a connection to pigp's database.
type DB struct {
	// auditKey links the audit chain (UseAuditKey); nil until then.
	auditKey *pigp.AuditKey
	gdb      *gorm.DB
	dialect  string
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Open connects to the database. dialect is SQLite or Postgres; for SQLite,
// dsn is a file path whose directory is created if needed. It does not
// migrate: call Migrate (or CheckSchema) next.
func Open(ctx context.Context, dialect, dsn string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         &gormLogger{log: log.With("component", "store"), slow: 500 * time.Millisecond},
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	var d gorm.Dialector
	switch dialect {
	case SQLite:
		if dsn != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
			if err := privateSQLiteFiles(dsn); err != nil {
				return nil, err
			}
		}
		// WAL with synchronous=FULL: a committed row survives a power loss.
		d = sqlite.Open(dsn + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)")
	case Postgres:
		d = postgres.Open(dsn)
	default:
		return nil, fmt.Errorf("unknown database dialect %q", dialect)
	}
	gdb, err := gorm.Open(d, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == SQLite {
		// One writer at a time: SQLite serialises writes anyway, and a
		// single connection avoids SQLITE_BUSY between our own goroutines.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return &DB{gdb: gdb, dialect: dialect, Now: func() time.Time { return time.Now().UTC() }}, nil
}

// privateSQLiteFiles makes the database file and its WAL and shared-memory
// files readable by the service user only (0600): the file is created
// with that mode before SQLite opens it, and SQLite creates -wal and -shm
// with the mode of the database file. Files of an older install are
// narrowed too.
func privateSQLiteFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict database file: %w", err)
		}
	}
	return nil
}

// Dialect returns SQLite or Postgres.
func (db *DB) Dialect() string { return db.dialect }

// Close closes the connection pool.
func (db *DB) Close() error {
	sqlDB, err := db.gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	sqlDB, err := db.gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

func (db *DB) now() time.Time { return db.Now().UTC() }

func (db *DB) with(ctx context.Context) *gorm.DB { return db.gdb.WithContext(ctx) }

// notFound maps gorm's not-found to a pigp ENOTFOUND with message msg.
func notFound(err error, msg string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return pigp.Errorf(pigp.ENOTFOUND, "%s", msg)
	}
	return err
}

// conflict maps a duplicate key to a pigp ECONFLICT with message msg.
func conflict(err error, msg string) error {
	if errors.Is(err, gorm.ErrDuplicatedKey) || isUniqueViolation(err) {
		return pigp.WrapError(pigp.ECONFLICT, msg, err)
	}
	return err
}

func isUniqueViolation(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "UNIQUE constraint failed") ||
		strings.Contains(err.Error(), "SQLSTATE 23505"))
}

// utc returns t in UTC, so that SQLite's text timestamps compare in order.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// gormLogger sends gorm's messages to slog, without SQL parameters (they
// may hold personal data).
type gormLogger struct {
	log  *slog.Logger
	slow time.Duration
}

func (l *gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l *gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, gorm.ErrDuplicatedKey) && !isUniqueViolation(err):
		l.log.ErrorContext(ctx, "query failed", "error", err, "elapsed", elapsed)
	case elapsed > l.slow:
		sql, rows := fc()
		if i := strings.IndexAny(sql, " \n"); i > 0 && len(sql) > 80 {
			sql = sql[:80]
		}
		l.log.WarnContext(ctx, "slow query", "sql", sql, "rows", rows, "elapsed", elapsed)
	}
}
