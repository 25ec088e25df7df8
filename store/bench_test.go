package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

// BenchmarkDepositCommit measures the commit of a deposit with its audit
// row from 8 concurrent clients: "once" is what an upload does now (one
// transaction under the audit lock, with the duplicate check), "two-steps"
// what it did before (the deposit row, then the audit row in its own
// transaction), for comparison.
func BenchmarkDepositCommit(b *testing.B) {
	for _, kind := range []string{store.SQLite, store.Postgres} {
		for _, mode := range []string{"once", "two-steps"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				dsn := b.TempDir() + "/pigp.db"
				if kind == store.Postgres {
					dsn = testutil.NewPostgresDB(b)
				}
				db := MustOpen(b, kind, dsn)
				ctx := context.Background()
				db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretA, Name: "Val-de-Marne"})
				now := time.Now().UTC()
				acct := &pigp.Account{Login: "alice-xt", Name: "Alice", Email: "a@example.fr", SIRETs: []string{siretA},
					PasswordHash: "x", PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0), State: pigp.AccountActive}
				if err := db.CreateAccount(ctx, acct); err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						id := pigp.NewID()
						name := fmt.Sprintf("2026_%s_%014d.xml", siretA, i)
						d := &pigp.Deposit{ID: id, ExternalName: name, InternalName: name + "." + siretA, SIRET: siretA,
							AccountID: acct.ID, Size: 1, SHA256: fmt.Sprintf("%064d", i), Status: pigp.DepositReceived,
							ClientIP: "192.0.2.1", Protocol: pigp.ProtocolSFTP, DepositedAt: time.Now().UTC(), StorageKey: "depots/" + id}
						ev := &pigp.AuditEvent{Action: pigp.AuditUpload, Outcome: pigp.AuditOK, Login: "alice-xt", Object: name, Detail: "dépôt " + id}
						var err error
						if mode == "once" {
							_, err = db.CreateDepositOnce(ctx, d, d.DepositedAt.Add(-24*time.Hour), ev, nil)
						} else if err = db.CreateDeposit(ctx, d); err == nil {
							err = db.Audit(ctx, ev)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
