package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

// TestCreateDepositOnce: retries of one upload (same account, name and
// SHA-256) racing on two connections make one deposit and one duplicate
// row each; another content or another account is a new deposit; a failed
// audit insert leaves no deposit.
func TestCreateDepositOnce(t *testing.T) {
	eachDSN(t, func(t *testing.T, dialect, dsn string) {
		ctx := context.Background()
		n1, n2 := MustOpen(t, dialect, dsn), MustOpen(t, dialect, dsn)
		acct := mustOrgAndAccount(t, n1, "alice-xt", siretA)
		now := time.Now().UTC().Truncate(time.Second)
		name := "2026_" + siretA + "_20260101120000.xml"
		newDeposit := func(sha string, at time.Time) *pigp.Deposit {
			id := pigp.NewID()
			return &pigp.Deposit{ID: id, ExternalName: name, InternalName: name + "." + siretA, SIRET: siretA, AccountID: acct.ID,
				Size: 10, SHA256: sha, Status: pigp.DepositReceived, ClientIP: "192.0.2.1", Protocol: pigp.ProtocolSFTP,
				DepositedAt: at, StorageKey: "depots/" + id[:2] + "/" + id}
		}
		ev := func(action string) *pigp.AuditEvent {
			return &pigp.AuditEvent{Action: action, Outcome: pigp.AuditOK, Login: "alice-xt", Object: name}
		}
		sha := func(c byte) string {
			b := make([]byte, 64)
			for i := range b {
				b[i] = c
			}
			return string(b)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, dups := 0, 0
		for i := range 8 {
			db := []*store.DB{n1, n2}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				existing, err := db.CreateDepositOnce(ctx, newDeposit(sha('a'), now), now.Add(-24*time.Hour), ev(pigp.AuditUpload),
					func(*pigp.Deposit) *pigp.AuditEvent { return ev(pigp.AuditUploadDuplicate) })
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if existing == nil {
					created++
				} else if existing.Duplicate && existing.SHA256 == sha('a') {
					dups++
				}
			}()
		}
		wg.Wait()
		if created != 1 || dups != 7 {
			t.Fatalf("8 racing retries: %d created, %d duplicates; want 1 and 7", created, dups)
		}
		count := func() int {
			ds, err := n1.ListDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA}})
			if err != nil {
				t.Fatal(err)
			}
			return len(ds)
		}
		if got := count(); got != 1 {
			t.Fatalf("%d deposits, want 1", got)
		}
		evs, _ := n1.ListAudit(ctx, pigp.AuditFilter{})
		byAction := map[string]int{}
		for _, e := range evs {
			byAction[e.Action]++
		}
		if byAction[pigp.AuditUpload] != 1 || byAction[pigp.AuditUploadDuplicate] != 7 {
			t.Fatalf("audit rows: %v", byAction)
		}
		// Other content, same name: a new deposit.
		if ex, err := n1.CreateDepositOnce(ctx, newDeposit(sha('b'), now), now.Add(-24*time.Hour), ev(pigp.AuditUpload), nil); err != nil || ex != nil {
			t.Fatalf("other content: %+v, %v", ex, err)
		}
		// Same content outside the window: a new deposit.
		later := now.Add(25 * time.Hour)
		if ex, err := n1.CreateDepositOnce(ctx, newDeposit(sha('a'), later), later.Add(-24*time.Hour), ev(pigp.AuditUpload), nil); err != nil || ex != nil {
			t.Fatalf("after the window: %+v, %v", ex, err)
		}
		if got := count(); got != 3 {
			t.Fatalf("%d deposits, want 3", got)
		}
		// A failure of the audit insert: no deposit.
		restore := testutil.FailAuditInserts(t, dialect, dsn, pigp.AuditUpload)
		if _, err := n2.CreateDepositOnce(ctx, newDeposit(sha('c'), now), now.Add(-24*time.Hour), ev(pigp.AuditUpload), nil); err == nil {
			t.Fatal("deposit recorded although its audit row failed")
		}
		if got := count(); got != 3 {
			t.Fatalf("%d deposits after the failed insert, want 3", got)
		}
		restore()
		if rep := mustVerify(t, n2); !rep.OK() {
			t.Fatalf("chain after all that: %+v", rep)
		}
	})
}
