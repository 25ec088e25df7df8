package exchange_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

// twoNodes returns two guards, as on two nodes, sharing one database.
func twoNodes(t *testing.T, kind string, now func() time.Time) (*store.DB, [2]*exchange.Guard) {
	t.Helper()
	ctx := context.Background()
	dialect, dsn := store.SQLite, filepath.Join(t.TempDir(), "pigp.db")
	if kind == "postgres" {
		dialect, dsn = store.Postgres, testutil.NewPostgresDB(t)
	}
	db, err := store.Open(ctx, dialect, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		t.Fatal(err)
	}
	var g [2]*exchange.Guard
	for i := range g {
		g[i] = exchange.NewGuard(exchange.DefaultGuardPolicy(), db, db, now, nil)
		g[i].Failures = db
	}
	return db, g
}

// TestGuardSharedAcrossNodes: failures spread over two nodes count as on
// one: the pair and the address are blocked on both, and the 30th failure
// bans the address once.
func TestGuardSharedAcrossNodes(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			now := winter
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			db, g := twoNodes(t, kind, clock)
			const ip = "192.0.2.44"
			// The pair: 3 free failures, alternating nodes; the 4th blocks
			// it on the other node too.
			for i := range 4 {
				if d, err := g[i%2].Check(ctx, ip, "agent-a"); err != nil || d != 0 {
					t.Fatalf("attempt %d: wait %v, %v; want none", i+1, d, err)
				}
				g[i%2].Failure(ctx, ip, "agent-a", pigp.ProtocolSFTP)
			}
			for i := range 2 {
				if d, err := g[i].Check(ctx, ip, "agent-a"); err != nil || d != 2*time.Second {
					t.Fatalf("node %d after 4 failures of the pair: wait %v, %v; want 2s", i, d, err)
				}
				if d, _ := g[i].Check(ctx, ip, "agent-b"); d != 0 {
					t.Fatalf("node %d: another login of the address blocked (%v) after 4 failures", i, d)
				}
			}
			// A success on node 1 clears the pair for node 0 too, once the block is over.
			advance(3 * time.Second)
			g[1].Success(ctx, ip, "agent-a")
			if d, _ := g[0].Check(ctx, ip, "agent-a"); d != 0 {
				t.Fatalf("pair still blocked after a success on the other node: %v", d)
			}

			// The address: failures with other logins, concurrently on both
			// nodes; the 30th bans it once.
			var wg sync.WaitGroup
			for i := 4; i < 29; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					g[i%2].Failure(ctx, ip, fmt.Sprintf("guess%d", i), pigp.ProtocolHTTP)
				}()
			}
			wg.Wait()
			for i := range 2 {
				if d, _ := g[i].Banned(ctx, ip); d != 0 {
					t.Fatalf("banned after 29 failures on node %d", i)
				}
				if d, _ := g[i].Check(ctx, ip, "agent-b"); d <= 0 {
					t.Fatalf("address not blocked on node %d after 29 failures", i)
				}
			}
			g[1].Failure(ctx, ip, "guess29", pigp.ProtocolSFTP)
			g[0].Failure(ctx, ip, "guess30", pigp.ProtocolSFTP) // past the threshold: no second ban
			for i := range 2 {
				if d, err := g[i].Banned(ctx, ip); err != nil || d != 30*time.Minute {
					t.Fatalf("node %d: banned for %v, %v; want 30m", i, d, err)
				}
			}
			bans, err := db.ListBans(ctx, clock())
			if err != nil || len(bans) != 1 || bans[0].IP != ip || bans[0].Failures != 30 {
				t.Fatalf("bans = %v, %v; want one of %s after 30 failures", bans, err, ip)
			}
			events, err := db.ListAudit(ctx, pigp.AuditFilter{From: winter.AddDate(-1, 0, 0), To: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range events {
				if e.Action == pigp.AuditBan {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d ban events in the audit trail, want 1", n)
			}
		})
	}
}

// TestGuardFailsClosed: when the counters cannot be read, Check returns
// the error (callers refuse the login).
func TestGuardFailsClosed(t *testing.T) {
	db, g := twoNodes(t, "sqlite", func() time.Time { return winter })
	db.Close()
	if _, err := g[0].Check(context.Background(), "192.0.2.1", "agent-a"); err == nil {
		t.Fatal("Check with the database closed: no error")
	}
}

// TestBanWithItsAuditRow: a ban is recorded with its audit row in one
// transaction: when the row cannot be written, there is no ban either
// (the address stays blocked by its counter); once it can, the next ban
// has its row.
func TestBanWithItsAuditRow(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dialect, dsn := store.SQLite, filepath.Join(t.TempDir(), "pigp.db")
			if kind == "postgres" {
				dialect, dsn = store.Postgres, testutil.NewPostgresDB(t)
			}
			db, err := store.Open(ctx, dialect, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
				t.Fatal(err)
			}
			g := exchange.NewGuard(exchange.DefaultGuardPolicy(), db, db, func() time.Time { return winter }, nil)
			g.Failures = db
			bans := func() int {
				events, err := db.ListAudit(ctx, pigp.AuditFilter{From: winter.AddDate(-1, 0, 0), To: time.Now().Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, e := range events {
					if e.Action == pigp.AuditBan {
						n++
					}
				}
				return n
			}

			restore := testutil.FailAuditInserts(t, string(dialect), dsn, pigp.AuditBan)
			for i := range 30 {
				g.Failure(ctx, "192.0.2.60", fmt.Sprintf("guess%d", i), pigp.ProtocolSFTP)
			}
			if d, err := g.Banned(ctx, "192.0.2.60"); err != nil || d != 0 {
				t.Fatalf("banned for %v (%v) although the ban's audit row failed", d, err)
			}
			if d, _ := g.Check(ctx, "192.0.2.60", "agent-a"); d <= 0 {
				t.Fatal("address not blocked after 30 failures")
			}
			restore()
			for i := range 30 {
				g.Failure(ctx, "192.0.2.61", fmt.Sprintf("guess%d", i), pigp.ProtocolSFTP)
			}
			if d, err := g.Banned(ctx, "192.0.2.61"); err != nil || d != 30*time.Minute {
				t.Fatalf("banned for %v, %v; want 30m", d, err)
			}
			if n := bans(); n != 1 {
				t.Fatalf("%d ban rows, want 1", n)
			}
		})
	}
}
