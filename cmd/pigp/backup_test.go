package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite", to tamper with a backup
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/config"
)

// ensureAuditKey makes sure the data directory has an audit key file, so
// that the backup is seen to carry it.
func ensureAuditKey(t *testing.T, dataDir string) []byte {
	t.Helper()
	p := filepath.Join(dataDir, auditKeyFile)
	if b, err := os.ReadFile(p); err == nil {
		return b
	}
	b := []byte(hex.EncodeToString(randomBytes(32)) + "\n")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBackupRestore takes a backup while three SFTP clients keep
// depositing, restores it into a new data directory and starts a server on
// it: every deposit acknowledged before the backup began is there with its
// SHA-256, every restored deposit has its content, the audit chain
// verifies, the host keys and the audit key are the same.
func TestBackupRestore(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	live := e.app.Config.DataDir
	auditKey := ensureAuditKey(t, live)
	resp := e.publish(siretA, "reponse-sauvegarde.xml", []byte("<ReponseAPA/>"))

	type ack struct{ name, sum string }
	var (
		mu     sync.Mutex
		acks   []ack
		failed []error
	)
	// Names from one fixed instant, a distinct second each: callName
	// reads the clock, and two writers could otherwise pick the same name.
	base := time.Now().In(apa.Paris).Add(-time.Hour).Truncate(time.Second)
	nameAt := func(n int) string {
		ts := base.Add(-time.Duration(n) * time.Second)
		return apa.CallName{Campaign: ts.Year(), SIRET: siretA, Timestamp: ts}.String()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		c, _ := e.dialSFTP("alice-xt", e.alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := nameAt(20000*w + i + 1)
				data := randomBytes(1000 + 997*i%20000)
				f, err := c.Create("/depot/" + name)
				if err == nil {
					_, err = f.Write(data)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Errorf("%s: %w", name, err))
				} else {
					acks = append(acks, ack{name, sha(data)})
				}
				mu.Unlock()
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)
	// An upload in flight across the whole backup: acknowledged after it.
	c, _ := e.dialSFTP("alice-xt", e.alice)
	lateName := nameAt(99999)
	late, err := c.Create("/depot/" + lateName)
	if err != nil {
		t.Fatal(err)
	}
	late.Write(randomBytes(50000))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d deposits acknowledged in a minute: %v", n, failed)
		}
	}
	mu.Lock()
	before := append([]ack(nil), acks...)
	mu.Unlock()

	out := filepath.Join(t.TempDir(), "sauvegarde")
	code, msg := e.cli(t, "backup", "--out", out)
	if code != 0 || !strings.Contains(msg, "sauvegarde écrite") || !strings.Contains(msg, "clé d'audit") {
		t.Fatalf("backup: exit %d\n%s", code, msg)
	}
	stopWriters()
	if err := late.Close(); err != nil {
		t.Fatalf("the upload in flight during the backup: %v", err)
	}
	mu.Lock()
	if len(failed) > 0 {
		t.Fatalf("deposits failed during the backup: %v", failed)
	}
	t.Logf("%d deposits acknowledged before the backup, %d in all", len(before), len(acks))
	all := map[string]string{lateName: ""}
	for _, a := range acks {
		all[a.name] = a.sum
	}
	if len(all) != len(acks)+1 {
		t.Fatalf("%d names for %d deposits: the test reused a name", len(all), len(acks)+1)
	}
	mu.Unlock()

	// The backup verifies with coreutils too, and holds no temporary upload.
	needTool(t, "sha256sum")
	if o, err := runIn(out, "sha256sum", "--quiet", "--strict", "-c", backupManifest); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(out, "store", "tmp")); err == nil {
		t.Fatal("the backup holds the store's temporary uploads")
	}

	restored := filepath.Join(t.TempDir(), "restauree")
	code, msg = e.cli(t, "restore", "--from", out, "--data-dir", restored)
	if code != 0 || !strings.Contains(msg, "journal d'audit intègre") {
		t.Fatalf("restore: exit %d\n%s", code, msg)
	}
	if code, msg := e.cli(t, "audit", "verify", "--data-dir", restored); code != 0 {
		t.Fatalf("audit verify on the restored data: exit %d\n%s", code, msg)
	}
	for _, f := range []string{"hostkeys/ssh_host_ed25519_key", "hostkeys/ssh_host_ecdsa_key", auditKeyFile} {
		a, _ := os.ReadFile(filepath.Join(live, f))
		b, err := os.ReadFile(filepath.Join(restored, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs after the restore (%v)", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(restored, auditKeyFile)); !bytes.Equal(b, auditKey) {
		t.Error("the audit key was not restored")
	}

	// A server starts on the restored directory.
	rc := config.Default()
	rc.DataDir = restored
	rc.SFTPListen = "127.0.0.1:0"
	rc.ShutdownTimeout = config.Duration(5 * time.Second)
	ra, err := openApp(ctx, rc, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if err := ra.StartSFTP(); err != nil {
		t.Fatal(err)
	}
	got := map[string]*pigp.Deposit{}
	ds, err := ra.DB.ListDeposits(ctx, pigp.DepositFilter{SIRETs: []string{siretA}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		got[d.ExternalName] = d
		if _, ok := all[d.ExternalName]; !ok {
			t.Errorf("restored deposit %s was never acknowledged", d.ExternalName)
		}
		b, err := readObject(ra.Blobs, d.StorageKey)
		if err != nil {
			t.Errorf("restored deposit %s has no content: %v", d.ExternalName, err)
			continue
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != d.SHA256 {
			t.Errorf("restored deposit %s: content does not match its SHA-256", d.ExternalName)
		}
	}
	for _, a := range before {
		d := got[a.name]
		if d == nil {
			t.Errorf("deposit %s, acknowledged before the backup, is missing", a.name)
		} else if d.SHA256 != a.sum {
			t.Errorf("deposit %s: SHA-256 %s, acknowledged with %s", a.name, d.SHA256, a.sum)
		}
	}
	if got[lateName] != nil {
		t.Errorf("the upload acknowledged after the backup is in it")
	}
	// The restored server serves the accounts, the host key and /retrait.
	conn, err := sshDialKnownHost(ra.SFTP.ListenAddr().String(), "alice-xt", e.alice, e.hostKeyFingerprints())
	if err != nil {
		t.Fatalf("login on the restored server with the same host key: %v", err)
	}
	defer conn.Close()
	if r, err := ra.DB.FindResponse(ctx, resp.ID); err != nil || r.SHA256 != resp.SHA256 {
		t.Fatalf("restored response: %v %v", r, err)
	}
	// The restore is in the restored audit trail, the backup in the live one.
	if n := countAudit(e.audit(t), func(ev *pigp.AuditEvent) bool { return strings.HasPrefix(ev.Object, "pigp backup") }); n != 1 {
		t.Errorf("%d audit rows for the backup, want 1", n)
	}
	evs, _ := ra.DB.ListAudit(ctx, pigp.AuditFilter{})
	if n := countAudit(evs, func(ev *pigp.AuditEvent) bool { return strings.HasPrefix(ev.Object, "pigp restore") }); n != 1 {
		t.Errorf("%d audit rows for the restore in the restored trail, want 1", n)
	}
}

// sshDialKnownHost logs in by password, accepting only a host key whose
// SHA-256 fingerprint is among known.
func sshDialKnownHost(addr, login, password string, known []string) (io.Closer, error) {
	cfg := sshConfig(login, password)
	cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		for _, k := range known {
			if k == fp {
				return nil
			}
		}
		return fmt.Errorf("unknown host key %s", fp)
	}
	return ssh.Dial("tcp", addr, cfg)
}

// runIn runs a command in dir and returns its combined output.
func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestBackupRestoreRefusals: what backup and restore refuse, with a reason,
// leaving nothing behind.
func TestBackupRestoreRefusals(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	ensureAuditKey(t, e.app.Config.DataDir)
	c, _ := e.dialSFTP("alice-xt", e.alice)
	f, _ := c.Create("/depot/" + callName(siretA, 1))
	f.Write([]byte("contenu du dépôt"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "sauvegarde")
	if code, msg := e.cli(t, "backup", "--out", good); code != 0 {
		t.Fatalf("backup: %d %s", code, msg)
	}

	t.Run("PostgreSQL", func(t *testing.T) {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
			return map[string]string{"PIGP_DATABASE_URL": "postgres://pigp@127.0.0.1:1/pigp", "PIGP_DATA_DIR": t.TempDir()}[k]
		}}
		dir := filepath.Join(t.TempDir(), "b")
		if code := m.Run(ctx, []string{"backup", "--out", dir}); code != 1 || !strings.Contains(out.String(), "docs/exploitation.md") ||
			!strings.Contains(out.String(), "pg_dump") {
			t.Fatalf("backup with PostgreSQL: exit %d, %q; want a refusal pointing at docs/exploitation.md", code, out.String())
		}
		if _, err := os.Stat(dir); err == nil {
			t.Error("the refused backup created its directory")
		}
		out.Reset()
		if code := m.Run(ctx, []string{"restore", "--from", good, "--data-dir", dir}); code != 1 || !strings.Contains(out.String(), "database_url") {
			t.Fatalf("restore with PostgreSQL configured: exit %d, %q", code, out.String())
		}
	})
	t.Run("BackupIntoNonEmpty", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "autre"), []byte("x"), 0o600)
		if code, msg := e.cli(t, "backup", "--out", dir); code != 1 || !strings.Contains(msg, "n'est pas vide") {
			t.Fatalf("backup into a non-empty directory: %d %s", code, msg)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("the refused backup touched the directory: %d entries", len(entries))
		}
	})
	t.Run("RestoreIntoNonEmpty", func(t *testing.T) {
		if code, msg := e.cli(t, "restore", "--from", good, "--data-dir", e.app.Config.DataDir); code != 1 ||
			!strings.Contains(msg, "n'est pas vide") {
			t.Fatalf("restore over the live data directory: %d %s", code, msg)
		}
	})
	t.Run("Usage", func(t *testing.T) {
		if code, msg := e.cli(t, "restore", "--from", good); code != 2 || !strings.Contains(msg, "--data-dir is required") {
			t.Fatalf("restore without --data-dir: %d %s", code, msg)
		}
		if code, msg := e.cli(t, "backup"); code != 2 || !strings.Contains(msg, "--out is required") {
			t.Fatalf("backup without --out: %d %s", code, msg)
		}
	})

	// Each case damages a copy of the good backup; the restore must refuse
	// with the reason and leave the target empty.
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"AlteredContent", func(t *testing.T, dir string) {
			p := firstContent(t, dir)
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			os.WriteFile(p, b, 0o600)
		}, "ne correspond pas à son empreinte SHA-256"},
		{"AlteredHostKey", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "hostkeys", "ssh_host_ed25519_key"), []byte("x"), 0o600)
		}, "hostkeys/ssh_host_ed25519_key ne correspond pas"},
		{"ExtraFile", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "store", "objects", "intrus"), []byte("x"), 0o600)
		}, "store/objects/intrus n'est pas dans MANIFEST.sha256"},
		{"NoManifest", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, backupManifest))
		}, "MANIFEST.sha256 manquant"},
		{"ContentDroppedWithItsLine", func(t *testing.T, dir string) {
			p := firstContent(t, dir)
			rel, _ := filepath.Rel(dir, p)
			os.Remove(p)
			rewriteManifest(t, dir, func(m map[string]string) { delete(m, filepath.ToSlash(rel)) })
		}, "manque dans la sauvegarde"},
		{"TamperedAudit", func(t *testing.T, dir string) {
			db, err := sql.Open("sqlite", filepath.Join(dir, backupDB))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("UPDATE audit_events SET detail = 'rien' WHERE id = (SELECT MIN(id) FROM audit_events)"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			rewriteManifest(t, dir, func(m map[string]string) {
				sum, err := hashFile(filepath.Join(dir, backupDB))
				if err != nil {
					t.Fatal(err)
				}
				m[backupDB] = sum
			})
		}, "journal d'audit de la sauvegarde altéré"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copie")
			copyTree(t, good, dir)
			tc.damage(t, dir)
			target := filepath.Join(t.TempDir(), "cible")
			code, msg := e.cli(t, "restore", "--from", dir, "--data-dir", target)
			if code != 1 || !strings.Contains(msg, tc.want) {
				t.Fatalf("restore: exit %d\n%s\nwant a refusal saying %q", code, msg, tc.want)
			}
			if entries, _ := os.ReadDir(target); len(entries) != 0 {
				t.Fatalf("the refused restore left %d entries in the target", len(entries))
			}
		})
	}
}

// firstContent returns the path of a deposit's content in a backup.
func firstContent(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	filepath.WalkDir(filepath.Join(dir, "store", "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) == 0 {
		t.Fatal("no content in the backup")
	}
	sort.Strings(found)
	return found[0]
}

func rewriteManifest(t *testing.T, dir string, edit func(map[string]string)) {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	var b strings.Builder
	for p, s := range m {
		fmt.Fprintf(&b, "%s  %s\n", s, p)
	}
	if err := os.WriteFile(filepath.Join(dir, backupManifest), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBackupCheckpoints: the audit checkpoint file is saved by pigp backup
// (checked against the snapshot) and put back by pigp restore, which
// never takes a checkpoint away from an existing file: restored into an
// audit_checkpoint_file that holds a later checkpoint, the older chain is
// reported and not attested.
func TestBackupCheckpoints(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	code, first := e.cli(t, "audit", "checkpoint", "--new")
	if code != 0 {
		t.Fatalf("checkpoint --new: %d %s", code, first)
	}
	out := filepath.Join(t.TempDir(), "sauvegarde")
	if code, msg := e.cli(t, "backup", "--out", out); code != 0 || !strings.Contains(msg, "1 point(s) de contrôle") {
		t.Fatalf("backup: exit %d\n%s", code, msg)
	}
	if b, err := os.ReadFile(filepath.Join(out, checkpointFile)); err != nil || string(b) != first {
		t.Fatalf("checkpoints in the backup: %q %v, want %q", b, err, first)
	}
	if m, err := readManifest(out); err != nil || m[checkpointFile] == "" {
		t.Fatalf("manifest: %v %v", m, err)
	}

	restored := filepath.Join(t.TempDir(), "restauree")
	if code, msg := e.cli(t, "restore", "--from", out, "--data-dir", restored); code != 0 || strings.Contains(msg, "ATTENTION") {
		t.Fatalf("restore: exit %d\n%s", code, msg)
	}
	if b, err := os.ReadFile(filepath.Join(restored, checkpointFile)); err != nil || string(b) != first {
		t.Fatalf("restored checkpoints: %q %v", b, err)
	}
	if code, msg := e.cli(t, "audit", "verify", "--data-dir", restored); code != 0 || !strings.Contains(msg, "1 point(s) de contrôle vérifié(s)") {
		t.Fatalf("verify of the restored data: exit %d\n%s", code, msg)
	}

	// The live trail goes on; its checkpoint file, kept outside the data
	// directory, gets a later checkpoint. Restoring the backup with that
	// file keeps it, reports it, and the older chain is not attested.
	c, _ := e.dialSFTP("alice-xt", e.alice)
	if err := put(c, callName(siretA, 1), []byte("<DemandeAPA/>")); err != nil {
		t.Fatal(err)
	}
	code, second := e.cli(t, "audit", "checkpoint", "--new")
	if code != 0 {
		t.Fatalf("second checkpoint: %d %s", code, second)
	}
	outside := filepath.Join(t.TempDir(), "points-de-controle.log")
	if err := os.WriteFile(outside, []byte(first+second), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PIGP_AUDIT_CHECKPOINT_FILE": outside}
	again := filepath.Join(t.TempDir(), "restauree2")
	code, msg := e.cliWith(t, env, "restore", "--from", out, "--data-dir", again)
	if code != 0 || !strings.Contains(msg, "ATTENTION") || !strings.Contains(msg, outside) {
		t.Fatalf("restore beside a later checkpoint: exit %d\n%s", code, msg)
	}
	if b, _ := os.ReadFile(outside); string(b) != first+second {
		t.Fatalf("checkpoint file after the restore: %q, want its two lines unchanged", b)
	}
	if code, msg := e.cliWith(t, env, "audit", "checkpoint", "--new", "--data-dir", again); code != 1 || !strings.Contains(msg, "raccourci ou réécrit") {
		t.Fatalf("checkpoint of the restored older chain: exit %d\n%s", code, msg)
	}
}
