package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func mustVerify(t *testing.T, db *store.DB, cps ...*pigp.AuditCheckpoint) *pigp.AuditReport {
	t.Helper()
	rep, err := db.VerifyAudit(context.Background(), cps...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// forger is an attacker who can write the database but has not the key:
// it recomputes links with a key of its own.
var forger = func() *pigp.AuditKey {
	k, _ := pigp.NewAuditKey([]byte("an attacker's key, not the server's one"))
	return k
}()

// snapshot is the whole trail and its head, to put back between cases.
type snapshot struct {
	rows []*pigp.AuditEvent
	head *pigp.AuditHead
}

func takeSnapshot(t *testing.T, db *store.DB) snapshot {
	t.Helper()
	ctx := context.Background()
	rows, err := db.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := db.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{rows, head}
}

// writeRaw replaces the trail and the head by rows and head, as an attacker
// with write access to the database would.
func writeRaw(t *testing.T, db *store.DB, rows []*pigp.AuditEvent, head *pigp.AuditHead) {
	t.Helper()
	if err := db.ExecRaw("DELETE FROM audit_events"); err != nil {
		t.Fatal(err)
	}
	for _, e := range rows {
		err := db.ExecRaw(`INSERT INTO audit_events (id, at, action, outcome, login, siret, ip, protocol, object, sha256, detail, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.Time, e.Action, e.Outcome, e.Login, e.SIRET, e.IP, e.Protocol,
			e.Object, e.SHA256, e.Detail, e.PrevHash, e.Hash)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.ExecRaw("UPDATE audit_head SET last_id = ?, last_hash = ?, key_id = ?, anchor_id = ?, mac = ? WHERE id = 1",
		head.LastID, head.LastHash, head.KeyID, head.AnchorID, head.MAC); err != nil {
		t.Fatal(err)
	}
}

func clone(rows []*pigp.AuditEvent) []*pigp.AuditEvent {
	out := make([]*pigp.AuditEvent, len(rows))
	for i, e := range rows {
		c := *e
		out[i] = &c
	}
	return out
}

// rechain recomputes the links of rows from index from on with link, and
// returns the head that goes with them, sealed with the forger's key.
func rechain(rows []*pigp.AuditEvent, from int, link func(e *pigp.AuditEvent) string, head pigp.AuditHead) *pigp.AuditHead {
	for i := from; i < len(rows); i++ {
		if i > 0 {
			rows[i].PrevHash = rows[i-1].Hash
		}
		rows[i].Hash = link(rows[i])
	}
	last := rows[len(rows)-1]
	head.LastID, head.LastHash = last.ID, last.Hash
	head.MAC = forger.HeadMAC(&head)
	return &head
}

func problems(rep *pigp.AuditReport) string { return strings.Join(rep.Problems, "\n") }

// TestAuditChainTamperDetection runs the attacks of someone who can write
// the database but has not the key, on both databases: each is detected,
// and the intact chain verifies between them.
func TestAuditChainTamperDetection(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Hostile text is kept literally, escaped, bounded, and still verifies.
		hostile := &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused,
			Login: "x' OR '1'='1", Object: "../\x00\n{user}$(id)" + strings.Repeat("é", 3000), Detail: "\xff\xfe"}
		if err := db.Audit(ctx, hostile); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, db, 6)
		oldHead, err := db.AuditHead(ctx) // row 8, genuine: what a backup of the database holds
		if err != nil {
			t.Fatal(err)
		}
		appendEvents(t, db, 4)
		cp, err := db.AuditCheckpoint(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, db, cp)
		if !rep.OK() || rep.Rows != 12 || rep.AnchorID != 1 || rep.Checkpoints != 1 {
			t.Fatalf("intact chain: %+v", rep)
		}
		intact := takeSnapshot(t, db)
		evs := intact.rows
		if evs[0].Action != pigp.AuditAnchor || evs[1].Login != "x' OR '1'='1" || !strings.HasPrefix(evs[1].Object, `../\x00\x0a{user}$(id)`) {
			t.Fatalf("rows: %+v %+v", evs[0], evs[1])
		}
		for i, e := range evs {
			if e.ID != int64(i+1) || (i > 0 && e.PrevHash != evs[i-1].Hash) || e.Hash != testutil.AuditKey().Link(e) {
				t.Fatalf("row %d not chained under the key: %+v", i, e)
			}
		}
		for _, c := range []struct {
			name   string
			tamper func(t *testing.T)
			cps    []*pigp.AuditCheckpoint
			want   []string
		}{
			{"edit", func(t *testing.T) {
				db.ExecRaw("UPDATE audit_events SET object = 'autre.xml' WHERE id = 5")
			}, nil, []string{"ligne 5 : contenu modifié"}},
			{"edit with a link recomputed without the key", func(t *testing.T) {
				rows := clone(evs)
				rows[5].Object = "forge.xml"
				rows[5].Hash = forger.Link(rows[5])
				writeRaw(t, db, rows, intact.head)
			}, nil, []string{"ligne 6 : contenu modifié ou lien recalculé sans la clé", "ligne 7 : le lien précédent ne correspond pas"}},
			{"edit with a plain SHA-256 link", func(t *testing.T) {
				rows := clone(evs)
				rows[5].Object = "forge.xml"
				rows[5].Hash = rows[5].ComputeHash()
				writeRaw(t, db, rows, intact.head)
			}, nil, []string{"ligne 6 : contenu modifié"}},
			{"delete", func(t *testing.T) {
				db.ExecRaw("DELETE FROM audit_events WHERE id = 5")
			}, nil, []string{"ligne 6 : rupture de séquence"}},
			{"reorder", func(t *testing.T) {
				rows := clone(evs)
				rows[4], rows[5] = rows[5], rows[4]
				rows[4].ID, rows[5].ID = 5, 6
				writeRaw(t, db, rows, intact.head)
			}, nil, []string{"ligne 5 : le lien précédent ne correspond pas", "ligne 5 : contenu modifié"}},
			{"insert", func(t *testing.T) {
				rows := clone(evs)
				extra := *rows[len(rows)-1]
				extra.ID, extra.Object = extra.ID+1, "ajout.xml"
				extra.PrevHash = rows[len(rows)-1].Hash
				extra.Hash = forger.Link(&extra)
				writeRaw(t, db, append(rows, &extra), rechain(append(rows, &extra), len(rows), forger.Link, *intact.head))
			}, nil, []string{"ligne 13 : contenu modifié ou lien recalculé", "tête de chaîne (ligne 13) falsifiée"}},
			{"tail cut, head fixed up", func(t *testing.T) {
				db.ExecRaw("DELETE FROM audit_events WHERE id >= 9")
				db.ExecRaw("UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1", evs[7].ID, evs[7].Hash)
			}, nil, []string{"tête de chaîne (ligne 8) falsifiée"}},
			{"tail cut back to a genuine older head, caught by a checkpoint", func(t *testing.T) {
				writeRaw(t, db, evs[:8], oldHead)
			}, []*pigp.AuditCheckpoint{cp}, []string{"fin de journal supprimée : le point de contrôle du", "atteste 12 ligne(s), il n'en reste que 8"}},
			{"full rechain without the key", func(t *testing.T) {
				rows := clone(evs)
				rows[2].Object = "réécrit.xml"
				writeRaw(t, db, rows, rechain(rows, 2, forger.Link, *intact.head))
			}, nil, []string{"ligne 3 : contenu modifié ou lien recalculé", "ligne 12 : contenu modifié ou lien recalculé", "tête de chaîne (ligne 12) falsifiée"}},
			{"full rechain as an unkeyed trail (anchor moved)", func(t *testing.T) {
				rows := clone(evs)
				rows[2].Object = "réécrit.xml"
				h := rechain(rows, 0, func(e *pigp.AuditEvent) string { return e.ComputeHash() }, *intact.head)
				h.AnchorID = 13
				writeRaw(t, db, rows, h)
			}, nil, []string{"ligne d'ancrage 13 absente", "tête de chaîne (ligne 12) falsifiée"}},
			{"rewrite caught by a checkpoint", func(t *testing.T) {
				db.ExecRaw("UPDATE audit_events SET hash = ? WHERE id = 12", strings.Repeat("0", 64))
			}, []*pigp.AuditCheckpoint{cp}, []string{"ligne 12 : ne correspond pas au point de contrôle"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				defer writeRaw(t, db, intact.rows, intact.head)
				c.tamper(t)
				rep := mustVerify(t, db, c.cps...)
				if rep.OK() {
					t.Fatalf("not detected: %+v", rep)
				}
				for _, w := range c.want {
					if !strings.Contains(problems(rep), w) {
						t.Errorf("problems lack %q:\n%s", w, problems(rep))
					}
				}
			})
			if rep := mustVerify(t, db, cp); !rep.OK() || rep.Rows != 12 {
				t.Fatalf("after %s, restored chain: %+v", c.name, rep)
			}
		}

		t.Run("checkpoints", func(t *testing.T) {
			line := "2026-05-04T10:20:00Z INFO audit checkpoint checkpoint=\"" + cp.String() + "\""
			back, err := pigp.ParseAuditCheckpoint(line)
			if err != nil || *back != *cp {
				t.Fatalf("parse %q: %+v, %v", line, back, err)
			}
			forged := *cp
			forged.Rows = 40
			other := *cp
			forger.SignCheckpoint(&other)
			rep := mustVerify(t, db, &forged, &other)
			if rep.OK() || rep.Checkpoints != 0 || strings.Count(problems(rep), "sceau invalide ou autre clé") != 2 {
				t.Fatalf("forged checkpoints: %+v", rep)
			}
		})

		t.Run("wrong key refused", func(t *testing.T) {
			_, err := db.UseAuditKey(ctx, forger)
			if pigp.ErrorCode(err) != pigp.ECONFLICT || !strings.Contains(pigp.ErrorMessage(err), "clé d'audit incorrecte") {
				t.Fatalf("UseAuditKey with another key: %v", err)
			}
			if rep := mustVerify(t, db); !rep.OK() {
				t.Fatalf("the refused key changed something: %+v", rep)
			}
		})
	})
}

// TestAuditMigrationReanchors: a trail written before keyed links (plain
// SHA-256) is verified and re-anchored by a keyed row saying so; a later
// rewrite of the old rows is detected.
func TestAuditMigrationReanchors(t *testing.T) {
	eachDSN(t, func(t *testing.T, dialect, dsn string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dialect, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		// The trail of an older version.
		var old []*pigp.AuditEvent
		prev := ""
		for i := 1; i <= 3; i++ {
			e := &pigp.AuditEvent{ID: int64(i), Time: time.Date(2026, 1, i, 10, 0, 0, 0, time.UTC), Action: pigp.AuditLogin,
				Outcome: pigp.AuditOK, Login: "alice-xt", PrevHash: prev}
			e.Normalize()
			e.Hash = e.ComputeHash()
			prev = e.Hash
			old = append(old, e)
		}
		writeRaw(t, db, old, &pigp.AuditHead{LastID: 3, LastHash: prev})
		if _, err := db.VerifyAudit(ctx); err == nil {
			t.Fatal("verify without a key")
		}
		anchor, err := db.UseAuditKey(ctx, testutil.AuditKey())
		if err != nil || anchor == nil {
			t.Fatalf("anchor: %+v, %v", anchor, err)
		}
		if anchor.ID != 4 || anchor.PrevHash != prev || anchor.Action != pigp.AuditAnchor || anchor.Outcome != pigp.AuditOK ||
			!strings.Contains(anchor.Detail, "3 ligne(s) antérieure(s) chaînées par SHA-256 sans clé, vérifiées intègres") {
			t.Fatalf("anchor row: %+v", anchor)
		}
		again, err := db.UseAuditKey(ctx, testutil.AuditKey())
		if err != nil || again != nil {
			t.Fatalf("second UseAuditKey anchored again: %+v, %v", again, err)
		}
		appendEvents(t, db, 2)
		if rep := mustVerify(t, db); !rep.OK() || rep.Rows != 6 || rep.AnchorID != 4 {
			t.Fatalf("re-anchored chain: %+v", rep)
		}
		// Rewriting the unkeyed rows, even with their SHA-256 chain
		// recomputed, breaks the keyed anchor's link over them.
		rows := clone(takeSnapshot(t, db).rows)
		rows[1].Login = "mallory"
		h := *takeSnapshot(t, db).head
		for i := 1; i < 3; i++ {
			rows[i].PrevHash = rows[i-1].Hash
			rows[i].Hash = rows[i].ComputeHash()
		}
		writeRaw(t, db, rows, &h)
		rep := mustVerify(t, db)
		if rep.OK() || !strings.Contains(problems(rep), "ligne 4 : le lien précédent ne correspond pas") {
			t.Fatalf("rewrite of the unkeyed rows: %+v", rep)
		}
	})
}

// TestAuditAnchorRecordsOldBreaks: an older trail already broken is
// anchored with its breaks recorded, and they stay reported.
func TestAuditAnchorRecordsOldBreaks(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.SQLite, t.TempDir()+"/pigp.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &pigp.AuditEvent{ID: 1, Time: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Action: pigp.AuditLogin, Outcome: pigp.AuditOK}
	e.Hash = e.ComputeHash()
	e.Login = "edited afterwards"
	writeRaw(t, db, []*pigp.AuditEvent{e}, &pigp.AuditHead{LastID: 1, LastHash: e.Hash})
	anchor, err := db.UseAuditKey(ctx, testutil.AuditKey())
	if err != nil || anchor.Outcome != pigp.AuditFailed || !strings.Contains(anchor.Detail, "1 anomalie(s) dont : ligne 1 : contenu modifié") {
		t.Fatalf("anchor of a broken trail: %+v, %v", anchor, err)
	}
	if rep := mustVerify(t, db); rep.OK() || !strings.Contains(problems(rep), "ligne 1 : contenu modifié") {
		t.Fatalf("old break not reported: %+v", rep)
	}
}

// TestAuditVerifySnapshot runs verify 50 times while two "nodes" append:
// each run reads one snapshot, so none sees a head ahead of its rows.
func TestAuditVerifySnapshot(t *testing.T) {
	eachDSN(t, func(t *testing.T, dialect, dsn string) {
		a, b, v := MustOpen(t, dialect, dsn), MustOpen(t, dialect, dsn), MustOpen(t, dialect, dsn)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var appended atomic.Int64
		for _, db := range []*store.DB{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := db.Audit(context.Background(), &pigp.AuditEvent{Action: pigp.AuditUpload, Outcome: pigp.AuditOK}); err != nil {
						t.Error(err)
						return
					}
					appended.Add(1)
				}
			}()
		}
		rows, grew := 0, 0
		for i := 0; i < 50; i++ {
			// Each run starts after more rows were appended: verification
			// and appends interleave.
			before := appended.Load()
			for appended.Load() == before && !t.Failed() {
				runtime.Gosched()
			}
			rep := mustVerify(t, v)
			if !rep.OK() {
				t.Errorf("run %d: false alarm under load: %v", i, rep.Problems)
			}
			if rep.Rows < rows {
				t.Errorf("run %d saw %d rows after %d", i, rep.Rows, rows)
			}
			if rep.Rows > rows {
				grew++
			}
			rows = rep.Rows
		}
		close(stop)
		wg.Wait()
		if rep := mustVerify(t, v); !rep.OK() || rep.Rows <= rows || grew < 40 {
			t.Fatalf("final: %+v (verify runs saw up to %d rows, growing %d times)", rep, rows, grew)
		}
		t.Logf("%s: 50 verifications during appends, up to %d rows", dialect, rows)
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
		if rep := mustVerify(t, a); !rep.OK() || rep.Rows != 81 {
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
	if rep := mustVerify(t, app); !rep.OK() || rep.Rows != 5 {
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
	if rep := mustVerify(t, owner); !rep.OK() || rep.Rows != 5 {
		t.Fatalf("after the attempts: %+v", rep)
	}
}

// TestAuditBySIRETs: the rows of a set of SIRETs and a period, read window
// by window in chain order on both databases. A row naming several SIRETs
// counts for each; a SIRET never matches part of another, nor a wildcard.
func TestAuditBySIRETs(t *testing.T) {
	const siretC = "21750001600019"
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		// 1100 rows (more than one window of ids), round-robin over the SIRET
		// fields below; one row a minute.
		fields := []string{siretA, siretB, siretA + "," + siretC, "", siretC + ", " + siretB, "9" + siretA, siretA[:13] + "%"}
		var evs []*pigp.AuditEvent
		for i := range 1100 {
			evs = append(evs, &pigp.AuditEvent{Time: base.Add(time.Duration(i) * time.Minute), Action: pigp.AuditLogin,
				Outcome: pigp.AuditOK, Login: fmt.Sprintf("agent-%d", i), SIRET: fields[i%len(fields)]})
		}
		if err := db.AuditMany(ctx, evs); err != nil {
			t.Fatal(err)
		}
		names := func(e *pigp.AuditEvent, sirets []string) bool {
			for _, s := range strings.Split(strings.ReplaceAll(e.SIRET, " ", ""), ",") {
				if slices.Contains(sirets, s) {
					return true
				}
			}
			return false
		}
		for _, tc := range []struct {
			name     string
			f        pigp.AuditFilter
			min, max int
		}{
			{"A", pigp.AuditFilter{SIRETs: []string{siretA}}, 300, 330},
			{"B and C", pigp.AuditFilter{SIRETs: []string{siretB, siretC}}, 450, 480},
			{"A, one day", pigp.AuditFilter{SIRETs: []string{siretA}, From: base.Add(100 * time.Minute), To: base.Add(400 * time.Minute)}, 80, 90},
			{"all", pigp.AuditFilter{}, 1101, 1101}, // and the anchor row
			{"A, after the rows", pigp.AuditFilter{SIRETs: []string{siretA}, From: base.Add(1100 * time.Minute)}, 0, 0},
			{"A, before the rows", pigp.AuditFilter{SIRETs: []string{siretA}, To: base}, 0, 0},
		} {
			var got []*pigp.AuditEvent
			err := db.EachAudit(ctx, tc.f, func(e *pigp.AuditEvent) error { got = append(got, e); return nil })
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if len(got) < tc.min || len(got) > tc.max {
				t.Fatalf("%s: %d rows, want %d to %d", tc.name, len(got), tc.min, tc.max)
			}
			want := 0
			for i, e := range evs {
				if (tc.f.SIRETs == nil || names(e, tc.f.SIRETs)) && (tc.f.From.IsZero() || !e.Time.Before(tc.f.From)) &&
					(tc.f.To.IsZero() || e.Time.Before(tc.f.To)) {
					if tc.f.SIRETs != nil && got[want].ID != e.ID {
						t.Fatalf("%s: row %d is %d, want %d (event %d)", tc.name, want, got[want].ID, e.ID, i)
					}
					want++
				}
			}
			if tc.f.SIRETs != nil && want != len(got) {
				t.Fatalf("%s: %d rows, want %d", tc.name, len(got), want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].ID <= got[i-1].ID {
					t.Fatalf("%s: rows out of chain order at %d", tc.name, i)
				}
			}
			listed, err := db.ListAudit(ctx, tc.f)
			if err != nil || len(listed) != len(got) {
				t.Fatalf("%s: ListAudit gave %d rows, %v; EachAudit %d", tc.name, len(listed), err, len(got))
			}
		}
		if err := db.EachAudit(ctx, pigp.AuditFilter{SIRETs: []string{}}, func(*pigp.AuditEvent) error {
			return fmt.Errorf("a row for no SIRET")
		}); err != nil {
			t.Fatal(err)
		}

		// fn's error stops the walk; rows appended during a walk are not
		// read by it.
		stop := fmt.Errorf("stop")
		n := 0
		if err := db.EachAudit(ctx, pigp.AuditFilter{}, func(*pigp.AuditEvent) error { n++; return stop }); err != stop || n != 1 {
			t.Fatalf("stopping walk: %v after %d rows", err, n)
		}
		n = 0
		err := db.EachAudit(ctx, pigp.AuditFilter{SIRETs: []string{siretA}}, func(*pigp.AuditEvent) error {
			n++
			if n == 1 {
				return db.Audit(ctx, &pigp.AuditEvent{Action: pigp.AuditExport, Outcome: pigp.AuditOK, SIRET: siretA})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if all, _ := db.ListAudit(ctx, pigp.AuditFilter{SIRETs: []string{siretA}}); n != len(all)-1 {
			t.Fatalf("the walk read %d rows of %d (one appended during it)", n, len(all))
		}
	})
}
