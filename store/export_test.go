package store

// ExecRaw runs SQL as the connection's role, bypassing the store: the
// tests use it to tamper with the audit trail as an attacker with write
// access to the database would.
func (db *DB) ExecRaw(sql string, args ...any) error {
	return db.gdb.Exec(sql, args...).Error
}
