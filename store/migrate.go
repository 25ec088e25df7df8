package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// migration is one versioned schema change. Its SQL is written once for both
// databases; {{ID}}, {{TS}} and {{BIGINT}} are replaced by each dialect's type.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the ordered list of schema changes. Never edit a released
// entry: append a new one.
var migrations = []migration{
	{1, "initial schema", `
CREATE TABLE organisations (
	siret      VARCHAR(14) PRIMARY KEY,
	name       VARCHAR(200) NOT NULL,
	created_at {{TS}} NOT NULL
);
CREATE TABLE accounts (
	id                  {{ID}},
	login               VARCHAR(64) NOT NULL UNIQUE,
	name                VARCHAR(200) NOT NULL,
	email               VARCHAR(254) NOT NULL,
	password_hash       VARCHAR(255) NOT NULL,
	password_set_at     {{TS}} NOT NULL,
	password_expires_at {{TS}} NOT NULL,
	password_temporary  BOOLEAN NOT NULL DEFAULT FALSE,
	state               VARCHAR(16) NOT NULL,
	created_at          {{TS}} NOT NULL,
	updated_at          {{TS}} NOT NULL
);
CREATE TABLE account_sirets (
	account_id {{BIGINT}} NOT NULL REFERENCES accounts(id),
	siret      VARCHAR(14) NOT NULL REFERENCES organisations(siret),
	PRIMARY KEY (account_id, siret)
);
CREATE TABLE ssh_keys (
	id          {{ID}},
	account_id  {{BIGINT}} NOT NULL REFERENCES accounts(id),
	fingerprint VARCHAR(100) NOT NULL,
	public_key  TEXT NOT NULL,
	comment     VARCHAR(255) NOT NULL DEFAULT '',
	created_at  {{TS}} NOT NULL,
	UNIQUE (account_id, fingerprint)
);
CREATE TABLE deposits (
	id            VARCHAR(32) PRIMARY KEY,
	external_name VARCHAR(255) NOT NULL,
	internal_name VARCHAR(255) NOT NULL,
	siret         VARCHAR(14) NOT NULL REFERENCES organisations(siret),
	account_id    {{BIGINT}} NOT NULL REFERENCES accounts(id),
	size          {{BIGINT}} NOT NULL,
	sha256        VARCHAR(64) NOT NULL,
	status        VARCHAR(16) NOT NULL,
	client_ip     VARCHAR(64) NOT NULL,
	protocol      VARCHAR(16) NOT NULL,
	deposited_at  {{TS}} NOT NULL,
	storage_key   VARCHAR(255) NOT NULL
);
CREATE INDEX deposits_siret_time ON deposits (siret, deposited_at);
CREATE INDEX deposits_status ON deposits (status, deposited_at);
CREATE TABLE responses (
	id                VARCHAR(32) PRIMARY KEY,
	name              VARCHAR(255) NOT NULL,
	siret             VARCHAR(14) NOT NULL REFERENCES organisations(siret),
	doc_type          VARCHAR(64) NOT NULL,
	size              {{BIGINT}} NOT NULL,
	sha256            VARCHAR(64) NOT NULL,
	deposit_id        VARCHAR(32),
	state             VARCHAR(16) NOT NULL,
	available_at      {{TS}} NOT NULL,
	expires_at        {{TS}} NOT NULL,
	first_download_at {{TS}},
	removed_at        {{TS}},
	storage_key       VARCHAR(255) NOT NULL,
	UNIQUE (siret, name)
);
CREATE INDEX responses_state_expiry ON responses (state, expires_at);
CREATE TABLE downloads (
	id            {{ID}},
	response_id   VARCHAR(32) NOT NULL REFERENCES responses(id),
	siret         VARCHAR(14) NOT NULL,
	account_id    {{BIGINT}} NOT NULL REFERENCES accounts(id),
	protocol      VARCHAR(16) NOT NULL,
	client_ip     VARCHAR(64) NOT NULL,
	downloaded_at {{TS}} NOT NULL
);
CREATE INDEX downloads_siret_time ON downloads (siret, downloaded_at);
`},
	{2, "fiscal reference data", `
CREATE TABLE ref_persons (
	foyer_id       VARCHAR(32) NOT NULL,
	rank           INTEGER NOT NULL,
	sex            VARCHAR(1) NOT NULL,
	birth_name     VARCHAR(80) NOT NULL,
	usage_name     VARCHAR(80) NOT NULL DEFAULT '',
	first_names    VARCHAR(100) NOT NULL,
	birth_date     VARCHAR(10) NOT NULL,
	birth_place    VARCHAR(5) NOT NULL,
	name_key       VARCHAR(80) NOT NULL,
	first_name_key VARCHAR(100) NOT NULL,
	PRIMARY KEY (foyer_id, rank)
);
CREATE INDEX ref_persons_identity ON ref_persons (name_key, first_name_key, sex);
CREATE TABLE ref_resources (
	foyer_id    VARCHAR(32) NOT NULL,
	year        INTEGER NOT NULL,
	category    VARCHAR(8) NOT NULL,
	beneficiary VARCHAR(5) NOT NULL,
	amount      {{BIGINT}} NOT NULL,
	PRIMARY KEY (foyer_id, year, category, beneficiary)
);
`},
	{3, "deposit processing", `
ALTER TABLE deposits ADD COLUMN claimed_at {{TS}};
ALTER TABLE deposits ADD COLUMN processed_at {{TS}};
CREATE UNIQUE INDEX responses_one_per_deposit ON responses (deposit_id);
`},
	{4, "scheduled jobs", `
CREATE TABLE job_ticks (
	job        VARCHAR(64) NOT NULL,
	tick       {{TS}} NOT NULL,
	node       VARCHAR(128) NOT NULL,
	claimed_at {{TS}} NOT NULL,
	PRIMARY KEY (job, tick)
);
CREATE TABLE job_runs (
	id          {{ID}},
	job         VARCHAR(64) NOT NULL,
	node        VARCHAR(128) NOT NULL,
	tick        {{TS}} NOT NULL,
	started_at  {{TS}} NOT NULL,
	finished_at {{TS}} NOT NULL,
	ok          BOOLEAN NOT NULL,
	message     TEXT NOT NULL,
	counts      VARCHAR(500) NOT NULL
);
CREATE INDEX job_runs_job_time ON job_runs (job, started_at);
`},
	{5, "password history", `
CREATE TABLE password_history (
	id            {{ID}},
	account_id    {{BIGINT}} NOT NULL REFERENCES accounts(id),
	password_hash VARCHAR(255) NOT NULL,
	set_at        {{TS}} NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, id);
`},
	{6, "lifecycle: expiry and notifications", `
ALTER TABLE responses ADD COLUMN expired_at {{TS}};
ALTER TABLE responses ADD COLUMN content_deleted_at {{TS}};
ALTER TABLE accounts ADD COLUMN password_expired_at {{TS}};
CREATE TABLE notifications (
	id              {{ID}},
	kind            VARCHAR(32) NOT NULL,
	dedup_key       VARCHAR(200) NOT NULL UNIQUE,
	recipient       VARCHAR(254) NOT NULL,
	subject         VARCHAR(255) NOT NULL,
	body            TEXT NOT NULL,
	status          VARCHAR(16) NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at {{TS}} NOT NULL,
	last_error      VARCHAR(500) NOT NULL DEFAULT '',
	created_at      {{TS}} NOT NULL,
	sent_at         {{TS}}
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
`},
	{7, "security: audit trail and bans", `
CREATE TABLE audit_events (
	id        {{BIGINT}} PRIMARY KEY,
	at        {{TS}} NOT NULL,
	action    VARCHAR(40) NOT NULL,
	outcome   VARCHAR(16) NOT NULL,
	login     VARCHAR(255) NOT NULL,
	siret     VARCHAR(255) NOT NULL,
	ip        VARCHAR(64) NOT NULL,
	protocol  VARCHAR(16) NOT NULL,
	object    VARCHAR(1000) NOT NULL,
	sha256    VARCHAR(64) NOT NULL,
	detail    VARCHAR(1000) NOT NULL,
	prev_hash VARCHAR(64) NOT NULL,
	hash      VARCHAR(64) NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TABLE audit_head (
	id        INTEGER PRIMARY KEY,
	last_id   {{BIGINT}} NOT NULL,
	last_hash VARCHAR(64) NOT NULL
);
INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '');
CREATE TABLE bans (
	ip        VARCHAR(64) PRIMARY KEY,
	reason    VARCHAR(255) NOT NULL,
	failures  INTEGER NOT NULL,
	banned_at {{TS}} NOT NULL,
	until     {{TS}} NOT NULL
);
`},
	{8, "directory accounts and group mappings", `
ALTER TABLE accounts ADD COLUMN source VARCHAR(8) NOT NULL DEFAULT 'local';
ALTER TABLE accounts ADD COLUMN directory_dn VARCHAR(1000) NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN last_seen_at {{TS}};
CREATE TABLE ldap_group_mappings (
	group_key  VARCHAR(1000) NOT NULL,
	group_dn   VARCHAR(1000) NOT NULL,
	siret      VARCHAR(14) NOT NULL REFERENCES organisations(siret),
	role       VARCHAR(16) NOT NULL,
	created_at {{TS}} NOT NULL,
	PRIMARY KEY (group_key, siret)
);
`},
	{9, "accounts: civility", `
ALTER TABLE accounts ADD COLUMN civility VARCHAR(8) NOT NULL DEFAULT '';
`},
	{10, "campaign windows", `
CREATE TABLE campaign_windows (
	year       INTEGER PRIMARY KEY,
	opens      VARCHAR(10) NOT NULL,
	closes     VARCHAR(10) NOT NULL,
	updated_at {{TS}} NOT NULL
);
`},
	{11, "keyed audit chain and exactly-once deposits", `
ALTER TABLE audit_head ADD COLUMN key_id VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN anchor_id {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE audit_head ADD COLUMN mac VARCHAR(64) NOT NULL DEFAULT '';
CREATE INDEX deposits_account_name ON deposits (account_id, external_name, deposited_at);
`},
	{12, "several nodes: portal sessions and shared login failure counters", `
CREATE TABLE portal_sessions (
	token_hash   VARCHAR(64) PRIMARY KEY,
	account_id   {{BIGINT}} NOT NULL REFERENCES accounts(id),
	login        VARCHAR(255) NOT NULL,
	caller       TEXT NOT NULL,
	csrf_secret  VARCHAR(64) NOT NULL,
	must_change  BOOLEAN NOT NULL DEFAULT FALSE,
	flash        VARCHAR(1000) NOT NULL DEFAULT '',
	created_at   {{TS}} NOT NULL,
	last_seen_at {{TS}} NOT NULL,
	expires_at   {{TS}} NOT NULL
);
CREATE INDEX portal_sessions_account ON portal_sessions (account_id);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);
CREATE TABLE login_failures (
	counter_key   VARCHAR(400) PRIMARY KEY,
	failures      INTEGER NOT NULL,
	last_at       {{TS}} NOT NULL,
	blocked_until {{TS}},
	expires_at    {{TS}} NOT NULL
);
CREATE INDEX login_failures_expiry ON login_failures (expires_at);
`},
}

// schemaMigration records an applied migration.
type schemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

func (schemaMigration) TableName() string { return "schema_migrations" }

func (db *DB) expand(sql string) string {
	r := strings.NewReplacer(
		"{{ID}}", map[string]string{SQLite: "INTEGER PRIMARY KEY AUTOINCREMENT", Postgres: "BIGSERIAL PRIMARY KEY"}[db.dialect],
		"{{TS}}", map[string]string{SQLite: "DATETIME", Postgres: "TIMESTAMPTZ"}[db.dialect],
		"{{BIGINT}}", "BIGINT",
	)
	return r.Replace(sql)
}

// LatestVersion is the schema version this build expects.
func LatestVersion() int { return migrations[len(migrations)-1].version }

// SchemaVersion returns the highest applied migration, 0 on an empty database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	if !db.gdb.Migrator().HasTable(&schemaMigration{}) {
		return 0, nil
	}
	var v *int
	if err := db.with(ctx).Model(&schemaMigration{}).Select("MAX(version)").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// Migrate applies the pending migrations in order, each in its own
// transaction, and returns the versions it applied. On PostgreSQL an
// advisory lock keeps two nodes from migrating at once.
func (db *DB) Migrate(ctx context.Context) ([]int, error) {
	// Up to date: touch nothing, so that an application role without DDL
	// rights (docs/securite.md) can start.
	if v, err := db.SchemaVersion(ctx); err == nil && v == LatestVersion() {
		return nil, nil
	}
	var applied []int
	err := db.gdb.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if db.dialect == Postgres {
			if err := conn.Exec("SELECT pg_advisory_lock(7411001)").Error; err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
			defer conn.Exec("SELECT pg_advisory_unlock(7411001)")
		}
		if err := conn.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at ` + db.expand("{{TS}}") + ` NOT NULL)`).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var done []int
		if err := conn.Model(&schemaMigration{}).Pluck("version", &done).Error; err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		have := map[int]bool{}
		for _, v := range done {
			have[v] = true
		}
		for _, m := range migrations {
			if have[m.version] {
				continue
			}
			err := conn.Transaction(func(tx *gorm.DB) error {
				for _, stmt := range splitStatements(db.expand(m.sql)) {
					if err := tx.Exec(stmt).Error; err != nil {
						return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
					}
				}
				return tx.Create(&schemaMigration{Version: m.version, Name: m.name, AppliedAt: db.now()}).Error
			})
			if err != nil {
				return err
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	return applied, err
}

// CheckSchema returns an error unless every migration has been applied.
func (db *DB) CheckSchema(ctx context.Context) error {
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v < LatestVersion() {
		return pigp.Errorf(pigp.EUNAVAILABLE, "database schema is at version %d, this build needs %d: run `pigp migrate`", v, LatestVersion())
	}
	if v > LatestVersion() {
		return pigp.Errorf(pigp.EUNAVAILABLE, "database schema is at version %d, newer than this build (%d)", v, LatestVersion())
	}
	return nil
}

// splitStatements splits a migration on semicolons at line ends. Migrations
// hold no semicolons inside literals.
func splitStatements(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";\n") {
		if s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}
