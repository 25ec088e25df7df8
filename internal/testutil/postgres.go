// Package testutil holds helpers shared by pigp's tests.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for creating test databases
)

// PostgresURL returns the URL of the PostgreSQL server tests use:
// PIGP_TEST_POSTGRES_URL, or the local server CI starts.
func PostgresURL() string {
	if u := os.Getenv("PIGP_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewPostgresDB creates a fresh, empty database on the test server and
// returns its URL; it is dropped when the test ends. Without a reachable
// server the test is skipped, unless CI=true, where it fails: CI must run
// every store test against PostgreSQL.
func NewPostgresDB(tb testing.TB) string {
	tb.Helper()
	admin, err := sql.Open("pgx", PostgresURL())
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL unreachable at %s: %v", PostgresURL(), err)
		}
		tb.Skipf("PostgreSQL unreachable at %s: %v", PostgresURL(), err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "pigp_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		tb.Fatalf("parse postgres url: %v", err)
	}
	u.Path = "/" + name
	return fmt.Sprint(u)
}
