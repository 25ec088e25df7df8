package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/store"
)

func TestStats(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		a := mustOrgAndAccount(t, db, "denis-xt", siretA)
		soon := mustOrgAndAccount(t, db, "soon-xt", siretA)
		if err := db.SetPassword(ctx, soon.Login, "$argon2id$y", now, now.Add(5*24*time.Hour), false); err != nil {
			t.Fatal(err)
		}
		month := mustOrgAndAccount(t, db, "month-xt", siretA)
		if err := db.SetPassword(ctx, month.Login, "$argon2id$z", now, now.Add(20*24*time.Hour), false); err != nil {
			t.Fatal(err)
		}
		off := mustOrgAndAccount(t, db, "off-xt", siretA)
		db.SetPassword(ctx, off.Login, "$argon2id$w", now, now.Add(2*24*time.Hour), false)
		if err := db.SetAccountState(ctx, off.Login, pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}

		s, err := db.Stats(ctx, now, []int{30, 7}, []string{"traitement", "menage"})
		if err != nil {
			t.Fatal(err)
		}
		if s.DepositsWaiting != 0 || !s.OldestWaiting.IsZero() || s.ResponsesAvailable != 0 || len(s.JobLastSuccess) != 0 {
			t.Fatalf("empty database: %+v", s)
		}
		for i, at := range []time.Time{now.Add(-time.Hour), now.Add(-2 * time.Hour), now.Add(-time.Minute)} {
			d := &pigp.Deposit{ID: pigp.NewID(), ExternalName: "x.xml", InternalName: "x", SIRET: siretA, AccountID: a.ID,
				Size: 1, SHA256: "00", Status: pigp.DepositReceived, ClientIP: "127.0.0.1", Protocol: pigp.ProtocolSFTP,
				DepositedAt: at, StorageKey: "depots/" + pigp.NewID()}
			if i == 2 {
				d.Status = pigp.DepositProcessed
			}
			if err := db.CreateDeposit(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		for i, exp := range []time.Time{now.Add(time.Hour), now.Add(-time.Hour)} {
			r := &pigp.Response{ID: pigp.NewID(), Name: []string{"a.xml", "b.xml"}[i], SIRET: siretA, DocType: pigp.DocResponse,
				Size: 1, SHA256: "00", State: pigp.ResponseAvailable, AvailableAt: now.Add(-2 * time.Hour), ExpiresAt: exp,
				StorageKey: "retraits/" + pigp.NewID()}
			if err := db.CreateResponse(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		for i, ok := range []bool{true, false} {
			started := now.Add(time.Duration(i-5) * time.Minute)
			if err := db.RecordJobRun(ctx, &pigp.JobRun{Job: "traitement", Node: "n", Tick: started, StartedAt: started,
				FinishedAt: started.Add(time.Second), OK: ok}); err != nil {
				t.Fatal(err)
			}
		}
		s, err = db.Stats(ctx, now, []int{30, 7}, []string{"traitement", "menage"})
		if err != nil {
			t.Fatal(err)
		}
		if s.DepositsWaiting != 2 || !s.OldestWaiting.Equal(now.Add(-2*time.Hour)) {
			t.Errorf("waiting: %d, oldest %v; want 2, %v", s.DepositsWaiting, s.OldestWaiting, now.Add(-2*time.Hour))
		}
		if s.ResponsesAvailable != 1 {
			t.Errorf("available responses: %d, want 1 (the other one is past its expiry)", s.ResponsesAvailable)
		}
		if s.PasswordsExpiring[30] != 2 || s.PasswordsExpiring[7] != 1 {
			t.Errorf("expiring: %v, want 30→2 7→1 (the disabled account is not counted)", s.PasswordsExpiring)
		}
		if got, ok := s.JobLastSuccess["traitement"]; !ok || !got.Equal(now.Add(-5*time.Minute+time.Second)) {
			t.Errorf("last success of traitement: %v %v, want the successful run's end, not the later failure", got, ok)
		}
		if _, ok := s.JobLastSuccess["menage"]; ok {
			t.Errorf("menage never ran but has a last success")
		}
	})
}

func TestBackupIntoOnlySQLite(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		mustOrgAndAccount(t, db, "denis-xt", siretA)
		out := filepath.Join(t.TempDir(), "copy.db")
		err := db.BackupInto(ctx, out)
		if db.Dialect() == store.Postgres {
			if pigp.ErrorCode(err) != pigp.EINVALID {
				t.Fatalf("PostgreSQL online copy: %v, want EINVALID", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := db.BackupInto(ctx, out); err == nil {
			t.Fatal("BackupInto overwrote an existing file")
		}
		cp := MustOpen(t, store.SQLite, out)
		if _, err := cp.FindAccountByLogin(ctx, "denis-xt"); err != nil {
			t.Fatalf("the copy lacks the account: %v", err)
		}
	})
}
