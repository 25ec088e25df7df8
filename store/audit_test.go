package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

func appendEvents(t *testing.T, db *store.DB, n int) {
	t.Helper()
	for i := range n {
		e := &pigp.AuditEvent{Action: pigp.AuditUpload, Outcome: pigp.AuditOK, Login: "alice-xt", SIRET: siretA,
			IP: "192.0.2.1", Protocol: pigp.ProtocolSFTP, Object: fmt.Sprintf("fichier-%d.xml", i), SHA256: strings.Repeat("ab", 32)}
		if err := db.Audit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, db *store.DB) *pigp.AuditReport {
	t.Helper()
	rep, err := db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAuditChainTamperDetection(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Hostile text is kept literally, escaped, bounded, and still verifies.
		hostile := &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused,
			Login: "x' OR '1'='1", Object: "../\x00\n{user}$(id)" + strings.Repeat("é", 3000), Detail: "\xff\xfe"}
		if err := db.Audit(ctx, hostile); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, db, 9)
		if rep := mustVerify(t, db); !rep.OK() || rep.Rows != 10 {
			t.Fatalf("intact chain: %+v", rep)
		}
		evs, err := db.ListAudit(ctx, pigp.AuditFilter{})
		if err != nil || len(evs) != 10 || evs[0].Login != "x' OR '1'='1" || !strings.HasPrefix(evs[0].Object, `../\x00\x0a{user}$(id)`) {
			t.Fatalf("list: %d %v %+v", len(evs), err, evs[0])
		}
		for i, e := range evs {
			if e.ID != int64(i+1) || (i > 0 && e.PrevHash != evs[i-1].Hash) {
				t.Fatalf("row %d not chained: %+v", i, e)
			}
		}

		t.Run("edit", func(t *testing.T) {
			if err := db.ExecRaw("UPDATE audit_events SET object = 'autre.xml' WHERE id = 4"); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, db)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "ligne 4 : contenu modifié") {
				t.Fatalf("edit not detected: %+v", rep)
			}
			db.ExecRaw("UPDATE audit_events SET object = ? WHERE id = 4", evs[3].Object)
			if rep := mustVerify(t, db); !rep.OK() {
				t.Fatalf("restored: %+v", rep)
			}
		})
		t.Run("edit with recomputed hash", func(t *testing.T) {
			// A forger who recomputes the row's own hash breaks the next link.
			forged := *evs[5]
			forged.Object = "forge.xml"
			h := forged.ComputeHash()
			db.ExecRaw("UPDATE audit_events SET object = ?, hash = ? WHERE id = 6", forged.Object, h)
			rep := mustVerify(t, db)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "ligne 7 : l'empreinte précédente") {
				t.Fatalf("forgery not detected: %+v", rep)
			}
			db.ExecRaw("UPDATE audit_events SET object = ?, hash = ? WHERE id = 6", evs[5].Object, evs[5].Hash)
		})
		t.Run("delete", func(t *testing.T) {
			db.ExecRaw("DELETE FROM audit_events WHERE id = 5")
			rep := mustVerify(t, db)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "ligne 6 : rupture de séquence") {
				t.Fatalf("deletion not detected: %+v", rep)
			}
		})
		t.Run("insert", func(t *testing.T) {
			// Put a forged row where the deleted one was, with a valid own hash.
			e := *evs[4]
			e.Object = "insere.xml"
			e.Hash = e.ComputeHash()
			err := db.ExecRaw(`INSERT INTO audit_events (id, at, action, outcome, login, siret, ip, protocol, object, sha256, detail, prev_hash, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.Time, e.Action, e.Outcome, e.Login, e.SIRET, e.IP, e.Protocol,
				e.Object, e.SHA256, e.Detail, e.PrevHash, e.Hash)
			if err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, db)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "ligne 6 : l'empreinte précédente") {
				t.Fatalf("insertion not detected: %+v", rep)
			}
		})
		t.Run("truncate tail", func(t *testing.T) {
			db.ExecRaw("DELETE FROM audit_events WHERE id >= 5")
			rep := mustVerify(t, db)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "tête de chaîne") {
				t.Fatalf("truncation not detected: %+v", rep)
			}
		})
	})
}

// TestAuditConcurrentWriters appends from many goroutines through two
// connection pools (two "nodes"): the chain must not fork.
func TestAuditConcurrentWriters(t *testing.T) {
	run := func(t *testing.T, a, b *store.DB) {
		var wg sync.WaitGroup
		for i := range 8 {
			db := a
			if i%2 == 1 {
				db = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if err := db.Audit(context.Background(), &pigp.AuditEvent{Action: pigp.AuditLogin, Outcome: pigp.AuditOK}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if rep := mustVerify(t, a); !rep.OK() || rep.Rows != 80 {
			t.Fatalf("after concurrent appends: %+v", rep)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := t.TempDir() + "/pigp.db"
		run(t, MustOpen(t, store.SQLite, path), MustOpen(t, store.SQLite, path))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testutil.NewPostgresDB(t)
		run(t, MustOpen(t, store.Postgres, dsn), MustOpen(t, store.Postgres, dsn))
	})
}

// TestAuditGrantsPostgres applies the grant script of docs/securite.md to
// a fresh role and checks, connected as that role, that audit rows can be
// added and read but neither changed nor deleted.
func TestAuditGrantsPostgres(t *testing.T) {
	doc, err := os.ReadFile("../docs/securite.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sql grants\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no ```sql grants block in docs/securite.md")
	}
	admin, err := sql.Open("pgx", testutil.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	role := "pigp_app_" + strings.ToLower(pigp.NewID()[:10])
	// Registered first, so it runs after the test database is dropped.
	t.Cleanup(func() {
		a, err := sql.Open("pgx", testutil.PostgresURL())
		if err == nil {
			a.Exec("DROP ROLE IF EXISTS " + role)
			a.Close()
		}
	})
	dsn := testutil.NewPostgresDB(t)
	owner := MustOpen(t, store.Postgres, dsn)
	appendEvents(t, owner, 3)
	if _, err := admin.Exec("CREATE ROLE " + role + " LOGIN PASSWORD 'Test-Only-Pw-42'"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	dbName := strings.TrimPrefix(u.Path, "/")
	script := strings.NewReplacer("pigp_app", role, "current_database_placeholder", dbName).Replace(string(m[1]))
	ownerConn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ownerConn.Close()
	for _, stmt := range strings.Split(script, ";") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
			if _, err := ownerConn.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	u.User = url.UserPassword(role, "Test-Only-Pw-42")
	app := MustOpen(t, store.Postgres, u.String()) // migrations already applied: a no-op
	if err := app.Audit(context.Background(), &pigp.AuditEvent{Action: pigp.AuditLogin, Outcome: pigp.AuditOK, Login: "alice-xt"}); err != nil {
		t.Fatalf("insert as the application role: %v", err)
	}
	if rep := mustVerify(t, app); !rep.OK() || rep.Rows != 4 {
		t.Fatalf("verify as the application role: %+v", rep)
	}
	for _, stmt := range []string{
		"UPDATE audit_events SET object = 'x' WHERE id = 1",
		"DELETE FROM audit_events WHERE id = 1",
		"TRUNCATE audit_events",
	} {
		err := app.ExecRaw(stmt)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the application role: %v, want permission denied", stmt, err)
		}
	}
	// The rest of the application still works under that role.
	if err := app.SaveBan(context.Background(), &pigp.Ban{IP: "192.0.2.9", Reason: "test"}); err != nil {
		t.Errorf("save ban as the application role: %v", err)
	}
	if rep := mustVerify(t, owner); !rep.OK() || rep.Rows != 4 {
		t.Fatalf("after the attempts: %+v", rep)
	}
}
