package testutil

import (
	"database/sql"
	"testing"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite", for fault injection
)

// FailAuditInserts makes the database refuse, from now on, every audit row
// whose action is action: a trigger raises an error on the insert, as a
// full disk or a broken table would. It is injected through a separate
// connection (dialect "sqlite" or "postgres", dsn as given to store.Open);
// the returned function removes it.
func FailAuditInserts(tb testing.TB, dialect, dsn, action string) (restore func()) {
	tb.Helper()
	driver, stmts, drop := "pgx", []string{
		`CREATE OR REPLACE FUNCTION pigp_test_fail_audit() RETURNS trigger AS $$
BEGIN
	IF NEW.action = '` + action + `' THEN RAISE EXCEPTION 'injected failure of the audit insert'; END IF;
	RETURN NEW;
END $$ LANGUAGE plpgsql`,
		`CREATE TRIGGER pigp_test_fail_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION pigp_test_fail_audit()`,
	}, []string{`DROP TRIGGER pigp_test_fail_audit ON audit_events`, `DROP FUNCTION pigp_test_fail_audit()`}
	if dialect == "sqlite" {
		driver, stmts, drop = "sqlite", []string{
			`CREATE TRIGGER pigp_test_fail_audit BEFORE INSERT ON audit_events WHEN NEW.action = '` + action + `'
BEGIN SELECT RAISE(ABORT, 'injected failure of the audit insert'); END`,
		}, []string{`DROP TRIGGER pigp_test_fail_audit`}
		dsn += "?_pragma=busy_timeout(10000)"
	}
	exec := func(list []string) {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			tb.Fatal(err)
		}
		defer db.Close()
		for _, s := range list {
			if _, err := db.Exec(s); err != nil {
				tb.Fatalf("fault injection: %s: %v", s, err)
			}
		}
	}
	exec(stmts)
	return func() { exec(drop) }
}
