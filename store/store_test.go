package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

const (
	siretA = "22940028800010" // Val-de-Marne
	siretB = "22750001100019" // Luhn-valid, another organisation
)

// eachDB runs fn against a fresh SQLite database and a fresh PostgreSQL one.
func eachDB(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, MustOpen(t, store.SQLite, filepath.Join(t.TempDir(), "pigp.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, MustOpen(t, store.Postgres, testutil.NewPostgresDB(t)))
	})
}

// eachDSN runs fn on a fresh SQLite file and a fresh PostgreSQL database,
// not opened yet.
func eachDSN(t *testing.T, fn func(t *testing.T, dialect, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, store.SQLite, filepath.Join(t.TempDir(), "pigp.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, store.Postgres, testutil.NewPostgresDB(t)) })
}

// MustOpen opens and migrates a database, closed at the end of the test.
func MustOpen(tb testing.TB, dialect, dsn string) *store.DB {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dialect, dsn, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		tb.Fatal(err)
	}
	return db
}

func mustOrgAndAccount(t *testing.T, db *store.DB, login string, sirets ...string) *pigp.Account {
	t.Helper()
	ctx := context.Background()
	for _, s := range sirets {
		if _, err := db.FindOrganisation(ctx, s); err != nil {
			if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: s, Name: "Org " + s}); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := time.Now().UTC()
	a := &pigp.Account{Login: login, Name: "Denis Jouffre", Email: login + "@example.fr", SIRETs: sirets,
		PasswordHash: "$argon2id$x", PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0), State: pigp.AccountActive}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMigrate(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v, err := db.SchemaVersion(ctx)
		if err != nil || v != store.LatestVersion() {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, store.LatestVersion())
		}
		applied, err := db.Migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second Migrate applied %v, %v; want nothing", applied, err)
		}
		if err := db.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOrganisations(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretA, Name: "Val-de-Marne"}); err != nil {
			t.Fatal(err)
		}
		err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretA, Name: "again"})
		if pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("duplicate SIRET: got %v, want ECONFLICT", err)
		}
		err = db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: "22940028800011", Name: "bad"})
		if pigp.ErrorCode(err) != pigp.EINVALID {
			t.Fatalf("bad checksum: got %v, want EINVALID", err)
		}
		if _, err := db.FindOrganisation(ctx, siretB); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown SIRET: got %v, want ENOTFOUND", err)
		}
		orgs, err := db.ListOrganisations(ctx)
		if err != nil || len(orgs) != 1 || orgs[0].Name != "Val-de-Marne" {
			t.Fatalf("ListOrganisations = %+v, %v", orgs, err)
		}
	})
}

func TestAccounts(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := mustOrgAndAccount(t, db, "djouffre-xt", siretA, siretB)
		got, err := db.FindAccountByLogin(ctx, "djouffre-xt")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a.ID || len(got.SIRETs) != 2 || got.State != pigp.AccountActive || got.Email != "djouffre-xt@example.fr" {
			t.Fatalf("FindAccountByLogin = %+v", got)
		}
		if !got.PasswordExpiresAt.Equal(a.PasswordExpiresAt.Truncate(time.Microsecond)) && !got.PasswordExpiresAt.Equal(a.PasswordExpiresAt) {
			t.Fatalf("expiry %v, want %v", got.PasswordExpiresAt, a.PasswordExpiresAt)
		}
		dup := *a
		dup.ID = 0
		if err := db.CreateAccount(ctx, &dup); pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("duplicate login: got %v, want ECONFLICT", err)
		}
		orphan := *a
		orphan.Login, orphan.SIRETs = "other-xt", []string{"21750001600019"}
		if err := db.CreateAccount(ctx, &orphan); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown organisation: got %v, want ENOTFOUND", err)
		}
		if _, err := db.FindAccountByLogin(ctx, "other-xt"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("failed account must not exist: %v", err)
		}
		if err := db.SetAccountState(ctx, "djouffre-xt", pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindAccountByLogin(ctx, "djouffre-xt"); got.State != pigp.AccountDisabled {
			t.Fatalf("state = %s, want disabled", got.State)
		}
		if err := db.SetAccountState(ctx, "nobody", pigp.AccountDisabled); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown login: got %v", err)
		}
		set := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := db.SetPassword(ctx, "djouffre-xt", "$argon2id$new", set, set.AddDate(1, 0, 0), true); err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindAccountByLogin(ctx, "djouffre-xt")
		if got.PasswordHash != "$argon2id$new" || !got.PasswordTemporary || !got.PasswordSetAt.Equal(set) {
			t.Fatalf("after SetPassword: %+v", got)
		}
		k := &pigp.SSHKey{AccountID: a.ID, Fingerprint: "SHA256:abc", PublicKey: "ssh-ed25519 AAAA"}
		if err := db.AddSSHKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := db.AddSSHKey(ctx, &pigp.SSHKey{AccountID: a.ID, Fingerprint: "SHA256:abc", PublicKey: "x"}); pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("duplicate key: got %v", err)
		}
		if _, err := db.FindSSHKey(ctx, a.ID, "SHA256:abc"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSSHKey(ctx, a.ID, "SHA256:zzz"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown key: got %v", err)
		}
		list, err := db.ListAccounts(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("ListAccounts = %v, %v", list, err)
		}
	})
}

func TestDepositsAndResponses(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := mustOrgAndAccount(t, db, "djouffre-xt", siretA)
		b := mustOrgAndAccount(t, db, "other-xt", siretB)
		base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
		for i, acc := range []*pigp.Account{a, a, b} {
			d := &pigp.Deposit{ID: pigp.NewID(), ExternalName: "2026_x.xml", InternalName: "2026_x.xml." + acc.SIRETs[0],
				SIRET: acc.SIRETs[0], AccountID: acc.ID, Size: int64(100 + i), SHA256: "ab", Status: pigp.DepositReceived,
				ClientIP: "127.0.0.1", Protocol: pigp.ProtocolSFTP, DepositedAt: base.Add(time.Duration(i) * time.Second), StorageKey: "k"}
			if err := db.CreateDeposit(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := db.ListDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA}})
		if err != nil || len(ds) != 2 {
			t.Fatalf("ListDeposits(A) = %d, %v; want 2", len(ds), err)
		}
		if ds[0].Size != 101 || ds[0].Login != "djouffre-xt" || ds[0].ExternalName != "2026_x.xml" || !ds[0].DepositedAt.Equal(base.Add(time.Second)) {
			t.Fatalf("newest deposit = %+v", ds[0])
		}
		if n, _ := db.CountDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA, siretB}}); n != 3 {
			t.Fatalf("CountDeposits = %d, want 3", n)
		}
		ds, _ = db.ListDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA}, Since: base.Add(500 * time.Millisecond)})
		if len(ds) != 1 {
			t.Fatalf("Since filter: %d deposits, want 1", len(ds))
		}
		got, err := db.FindDeposit(ctx, ds[0].ID)
		if err != nil || got.SIRET != siretA {
			t.Fatalf("FindDeposit = %+v, %v", got, err)
		}
		if _, err := db.FindDeposit(ctx, pigp.NewID()); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown deposit: %v", err)
		}

		r := &pigp.Response{ID: pigp.NewID(), Name: "2026_R_REP.xml", SIRET: siretA, DocType: pigp.DocResponse, Size: 10,
			SHA256: "cd", State: pigp.ResponseAvailable, AvailableAt: base, ExpiresAt: base.Add(21 * 24 * time.Hour), StorageKey: "r"}
		if err := db.CreateResponse(ctx, r); err != nil {
			t.Fatal(err)
		}
		dup := *r
		dup.ID = pigp.NewID()
		if err := db.CreateResponse(ctx, &dup); pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("duplicate response name: %v", err)
		}
		if rs, _ := db.ListAvailableResponses(ctx, []string{siretA}, base.Add(21*24*time.Hour-time.Second)); len(rs) != 1 {
			t.Fatalf("available before expiry: %d", len(rs))
		}
		if rs, _ := db.ListAvailableResponses(ctx, []string{siretA}, base.Add(21*24*time.Hour)); len(rs) != 0 {
			t.Fatalf("available at expiry: %d", len(rs))
		}
		if rs, _ := db.ListAvailableResponses(ctx, []string{siretB}, base); len(rs) != 0 {
			t.Fatalf("other SIRET sees %d responses", len(rs))
		}
		if _, err := db.FindAvailableResponse(ctx, []string{siretB}, r.Name, base); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("other SIRET finds response: %v", err)
		}
		if err := db.MarkResponseRemoved(ctx, r.ID, base); pigp.ErrorCode(err) != pigp.EFORBIDDEN {
			t.Fatalf("remove before download: %v, want EFORBIDDEN", err)
		}
		for i := 0; i < 2; i++ {
			if err := db.RecordDownload(ctx, &pigp.Download{ResponseID: r.ID, SIRET: siretA, AccountID: a.ID,
				Protocol: pigp.ProtocolSFTP, ClientIP: "127.0.0.1", DownloadedAt: base.Add(time.Duration(i+1) * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		got2, _ := db.FindResponse(ctx, r.ID)
		if got2.FirstDownloadAt == nil || !got2.FirstDownloadAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("first download = %v, want %v", got2.FirstDownloadAt, base.Add(time.Hour))
		}
		dls, err := db.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
		if err != nil || len(dls) != 2 || dls[0].ResponseName != r.Name || dls[0].Login != "djouffre-xt" || dls[0].Size != 10 ||
			!dls[0].DownloadedAt.Equal(base.Add(2*time.Hour)) {
			t.Fatalf("ListDownloads = %+v, %v", dls, err)
		}
		if n, err := db.CountDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}}); err != nil || n != 2 {
			t.Fatalf("CountDownloads = %d, %v; want 2", n, err)
		}
		if n, _ := db.CountDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}, Since: base.Add(90 * time.Minute)}); n != 1 {
			t.Fatalf("CountDownloads since = %d, want 1", n)
		}
		if err := db.MarkResponseRemoved(ctx, r.ID, base.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if rs, _ := db.ListAvailableResponses(ctx, []string{siretA}, base); len(rs) != 0 {
			t.Fatalf("removed response still listed")
		}
		if err := db.MarkResponseRemoved(ctx, r.ID, base); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("second remove: %v", err)
		}
		if dls, _ := db.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}}); len(dls) != 2 {
			t.Fatalf("history lost after removal: %d", len(dls))
		}
	})
}

// TestSQLiteFilesPrivate: the database file and its WAL and shared-memory
// files are readable by the service user only, also for a file an older
// version created 0644.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "pigp.db"), old} {
		db := MustOpen(t, store.SQLite, path)
		appendEvents(t, db, 1) // writes: the WAL and the shared memory exist
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
			}
		}
	}
}
