package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/scheduler"
)

// genericMessage is what a client reads for any internal failure.
var genericMessage = pigp.ErrorMessage(errors.New("x"))

// cliWith runs a pigp command against e's database with extra environment.
func (e *env) cliWith(t *testing.T, extra map[string]string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		switch k {
		case "PIGP_DATA_DIR":
			return e.app.Config.DataDir
		case "PIGP_DATABASE_URL":
			return e.app.Config.DatabaseURL
		case "USER":
			return "operateur-test"
		}
		return ""
	}}
	code := m.Run(context.Background(), args)
	return code, out.String()
}

// dialect returns e's database dialect and DSN (for fault injection).
func (e *env) dialect() (string, string) { return e.app.Config.Database() }

// sftpMessage returns the status text an SFTP client received in err.
func sftpMessage(t *testing.T, err error) string {
	t.Helper()
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not an SFTP status", err, err)
	}
	m := regexp.MustCompile(`^sftp: (".*") \(`).FindStringSubmatch(se.Error())
	if m == nil {
		t.Fatalf("status %q not understood", se.Error())
	}
	s, err := strconv.Unquote(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// put uploads data as name over pkg/sftp and returns the error of the
// whole transfer (open, write, close).
func put(c *sftp.Client, name string, data []byte) error {
	f, err := c.Create("/depot/" + name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestAuditKeyEndToEnd: the key file is created 0600 at first start; the
// CLI verifies the chain and prints checkpoints; another key, a missing
// key file and a cut tail with its head fixed up are refused.
func TestAuditKeyEndToEnd(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			keyFile := filepath.Join(e.app.Config.DataDir, "audit.key")
			fi, err := os.Stat(keyFile)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("audit key file: %v %v", fi, err)
			}
			b, _ := os.ReadFile(keyFile)
			if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
				t.Fatalf("audit key file holds %q", b)
			}
			c, _ := e.dialSFTP("alice-xt", e.alice)
			for i := range 3 {
				if err := put(c, callName(siretA, i), []byte("<DemandeAPA/>"+strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			if code, out := e.cli(t, "audit", "verify"); code != 0 || !strings.Contains(out, "journal d'audit intègre") {
				t.Fatalf("verify: %d %s", code, out)
			}
			code, line := e.cli(t, "audit", "checkpoint", "--new")
			if code != 0 || !strings.HasPrefix(line, "pigp-audit-checkpoint/1 ") {
				t.Fatalf("checkpoint --new: %d %s", code, line)
			}
			if code, latest := e.cli(t, "audit", "checkpoint"); code != 0 || latest != line {
				t.Fatalf("checkpoint: %d %q, want %q", code, latest, line)
			}
			if code, out := e.cli(t, "audit", "verify", "--checkpoint", strings.TrimSpace(line)); code != 0 ||
				!strings.Contains(out, "2 point(s) de contrôle vérifié(s)") {
				t.Fatalf("verify with a checkpoint: %d %s", code, out)
			}

			other, _ := pigp.GenerateAuditKey()
			code, out := e.cliWith(t, map[string]string{"PIGP_AUDIT_KEY": other.Text()}, "audit", "verify")
			if code != 1 || !strings.Contains(out, "clé d'audit incorrecte") {
				t.Fatalf("verify with another key: %d %s", code, out)
			}
			code, out = e.cliWith(t, map[string]string{"PIGP_AUDIT_KEY_FILE": filepath.Join(t.TempDir(), "absente.key")}, "audit", "verify")
			if code != 1 || !strings.Contains(out, "clé d'audit introuvable") {
				t.Fatalf("verify without the key file: %d %s", code, out)
			}
			if code, out := e.cliWith(t, map[string]string{"PIGP_AUDIT_KEY": strings.TrimSpace(string(b))}, "audit", "verify"); code != 0 {
				t.Fatalf("verify with the key from the environment: %d %s", code, out)
			}

			// Cut the tail and fix the head up, as a database administrator could.
			evs, _ := e.app.DB.ListAudit(context.Background(), pigp.AuditFilter{})
			keep := evs[len(evs)-3]
			raw := openRaw(t, e)
			mustExec(t, raw, "DELETE FROM audit_events WHERE id > "+strconv.FormatInt(keep.ID, 10))
			mustExec(t, raw, "UPDATE audit_head SET last_id = "+strconv.FormatInt(keep.ID, 10)+", last_hash = '"+keep.Hash+"' WHERE id = 1")
			code, out = e.cli(t, "audit", "verify")
			if code != 1 || !strings.Contains(out, "falsifiée") || !strings.Contains(out, "fin de journal supprimée") ||
				!strings.Contains(out, "journal d'audit altéré") {
				t.Fatalf("verify after a cut tail: %d %s", code, out)
			}
			// The server refuses to attest the cut trail.
			if code, out := e.cli(t, "audit", "checkpoint", "--new"); code != 1 || !strings.Contains(out, "falsifiée") {
				t.Fatalf("checkpoint of a cut trail: %d %s", code, out)
			}
			// Wiped: rows gone and the head reset as before any key. The
			// checkpoints outside the database refuse a new anchoring.
			mustExec(t, raw, "DELETE FROM audit_events")
			mustExec(t, raw, "UPDATE audit_head SET last_id = 0, last_hash = '', key_id = '', anchor_id = 0, mac = '' WHERE id = 1")
			if code, out := e.cli(t, "audit", "verify"); code != 1 || !strings.Contains(out, "la base a été vidée ou remplacée") {
				t.Fatalf("verify of a wiped trail: %d %s", code, out)
			}
		})
	}
}

// TestCheckpointJob: the scheduled job seals a checkpoint, appends it to
// the checkpoint file and logs it; a later verify checks it.
func TestCheckpointJob(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	var logs bytes.Buffer
	e.app.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	var job scheduler.Job
	for _, j := range e.app.jobs() {
		if j.Name == jobCheckpoint {
			job = j
		}
	}
	if job.Run == nil || job.Schedule != "45 */10 * * * *" {
		t.Fatalf("checkpoint job: %+v", job)
	}
	for range 2 {
		if _, err := job.Run(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(e.app.Config.DataDir, "audit-checkpoints.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.Contains(logs.String(), `msg="audit checkpoint" checkpoint="`+lines[1]+`"`) {
		t.Fatalf("checkpoint file %q, log %q", b, logs.String())
	}
	fi, _ := os.Stat(filepath.Join(e.app.Config.DataDir, "audit-checkpoints.log"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("checkpoint file mode %v", fi.Mode().Perm())
	}
	// The log line itself is accepted by verify.
	logLine := strings.TrimSpace(strings.Split(logs.String(), "\n")[1])
	if code, out := e.cli(t, "audit", "verify", "--checkpoint", logLine); code != 0 || !strings.Contains(out, "3 point(s) de contrôle vérifié(s)") {
		t.Fatalf("verify with a log line: %d %s", code, out)
	}
}

// TestVerifyDuringUploads runs `pigp audit verify` 50 times while clients
// upload: it never raises a false alarm.
func TestVerifyDuringUploads(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			uploads := 0
			for w := range 3 {
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
						if err := put(c, callName(siretA, w*10000+i), randomBytes(2048)); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						uploads++
						mu.Unlock()
					}
				}()
			}
			for i := range 50 {
				code, out := e.cli(t, "audit", "verify")
				if code != 0 {
					t.Errorf("run %d during uploads: exit %d: %s", i, code, out)
				}
			}
			close(stop)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if uploads < 10 {
				t.Fatalf("only %d uploads ran during the 50 verifications", uploads)
			}
			t.Logf("50 verifications during %d uploads", uploads)
		})
	}
}

// TestAuditInsertFailureLeavesNoDeposit: with the audit insert failing, an
// SFTP upload is refused with the French generic message and leaves no
// deposit and no content.
func TestAuditInsertFailureLeavesNoDeposit(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			c, _ := e.dialSFTP("alice-xt", e.alice)
			dialect, dsn := e.dialect()
			restore := testutil.FailAuditInserts(t, dialect, dsn, pigp.AuditUpload)
			err := put(c, callName(siretA, 1), []byte("<DemandeAPA/>"))
			if err == nil {
				t.Fatal("upload answered OK although its audit row failed")
			}
			if msg := sftpMessage(t, err); msg != genericMessage {
				t.Fatalf("client read %q, want the generic message", msg)
			}
			if ds := e.deposits(siretA); len(ds) != 0 {
				t.Fatalf("deposit without its audit row: %+v", ds)
			}
			for _, f := range e.diskFiles() {
				if strings.HasPrefix(f, "/store/") {
					t.Fatalf("content left behind: %v", e.diskFiles())
				}
			}
			restore()
			if err := put(c, callName(siretA, 1), []byte("<DemandeAPA/>")); err != nil {
				t.Fatalf("upload after the failure: %v", err)
			}
			if ds := e.deposits(siretA); len(ds) != 1 {
				t.Fatalf("%d deposits, want 1", len(ds))
			}
		})
	}
}

// TestSFTPReadAndCloseErrors: a response whose read fails, and one whose
// download cannot be recorded at close, show OpenSSH's sftp no server
// path or Go error, on each database. The French generic message the
// client reads is checked in process by vfs's TestReadAndCloseErrors.
func TestSFTPReadAndCloseErrors(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			broken := e.publish(siretA, "casse_REP.xml", []byte("<ReponseAPA/>"))
			p := filepath.Join(e.app.Spool.Dir(), "objects", filepath.FromSlash(broken.StorageKey))
			// The content is cut short: opening works, reading fails (the
			// object ends before the size its row records). (A directory in
			// its place, as this test used to make, is no object: the
			// Backend refuses it at open.)
			if err := os.Truncate(p, 3); err != nil {
				t.Fatal(err)
			}
			e.publish(siretA, "ok_REP.xml", []byte("<ReponseAPA>contenu</ReponseAPA>"))
			dialect, dsn := e.dialect()
			restore := testutil.FailAuditInserts(t, dialect, dsn, pigp.AuditDownload)
			t.Run("openssh", func(t *testing.T) {
				needTool(t, "sftp", "sshpass")
				dir := t.TempDir()
				out, _ := e.sftpBatch("alice-xt", e.alice, "-get /retrait/casse_REP.xml\n-get /retrait/ok_REP.xml\n", dir)
				t.Logf("OpenSSH sftp said:\n%s", out)
				for _, leak := range []string{e.app.Config.DataDir, "objects", "is a directory", "record download", "audit", "injected", "SQLSTATE"} {
					if strings.Contains(out, leak) {
						t.Errorf("OpenSSH sftp shows internal text %q:\n%s", leak, out)
					}
				}
			})
			restore()
			if ds, _ := e.app.DB.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: []string{siretA}}); len(ds) != 0 {
				t.Fatalf("downloads recorded without their audit row: %d", len(ds))
			}
		})
	}
}

// TestOperatorActionAuditFailure: an operator action whose audit row
// cannot be written does not happen.
func TestOperatorActionAuditFailure(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			dialect, dsn := e.dialect()
			restore := testutil.FailAuditInserts(t, dialect, dsn, pigp.AuditOperator)
			if code, out := e.cli(t, "user", "disable", "--login", "alice-xt"); code == 0 {
				t.Fatalf("user disable without its audit row: %d %s", code, out)
			}
			a, _ := e.app.DB.FindAccountByLogin(context.Background(), "alice-xt")
			if a.State != pigp.AccountActive {
				t.Fatal("account disabled although the action could not be audited")
			}
			restore()
			if code, out := e.cli(t, "user", "disable", "--login", "alice-xt"); code != 0 {
				t.Fatalf("user disable: %d %s", code, out)
			}
			evs := e.audit(t)
			last := evs[len(evs)-1]
			if last.Action != pigp.AuditOperator || last.Object != "pigp user disable --login alice-xt" || last.Outcome != pigp.AuditOK {
				t.Fatalf("operator row: %+v", last)
			}
		})
	}
}

// TestHousekeepingKeepsRunningUpload: `pigp expire --at` a year ahead, run
// as a separate process while an upload is in progress, leaves its
// temporary file alone; the upload then completes.
func TestHousekeepingKeepsRunningUpload(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	c, _ := e.dialSFTP("alice-xt", e.alice)
	name := callName(siretA, 7)
	first, second := randomBytes(300<<10), randomBytes(200<<10)
	f, err := c.Create("/depot/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(first); err != nil {
		t.Fatal(err)
	}
	if len(e.tmpFiles()) != 1 {
		t.Fatalf("tmp/ holds %v, want the upload's file", e.tmpFiles())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIGP_TEST_MAIN=expire --at "+time.Now().AddDate(1, 0, 0).Format("2006-01-02"),
		"PIGP_DATA_DIR="+e.app.Config.DataDir, "PIGP_DATABASE_URL="+e.app.Config.DatabaseURL)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "menage: ") {
		t.Fatalf("pigp expire --at: %v\n%s", err, out)
	}
	if len(e.tmpFiles()) != 1 {
		t.Fatalf("housekeeping removed the running upload's file (tmp/ holds %v)\n%s", e.tmpFiles(), out)
	}
	if _, err := f.Write(second); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ds := e.deposits(siretA)
	if len(ds) != 1 || ds[0].SHA256 != sha(append(first, second...)) {
		t.Fatalf("deposit after housekeeping: %+v", ds)
	}
}

// TestCheckpointDowngrade: the chain put back to an older genuine state
// (rows cut and the head of that time restored, as an older copy of the
// database would be) is not attested, even once an intruder appends the
// older checkpoint that matches it to the checkpoint file: every
// checkpoint of the file counts, not only its last line.
func TestCheckpointDowngrade(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	code, old := e.cli(t, "audit", "checkpoint", "--new")
	if code != 0 {
		t.Fatalf("checkpoint --new: %d %s", code, old)
	}
	raw := openRaw(t, e)
	var lastID int64
	var lastHash, mac string
	if err := raw.QueryRow("SELECT last_id, last_hash, mac FROM audit_head WHERE id = 1").Scan(&lastID, &lastHash, &mac); err != nil {
		t.Fatal(err)
	}
	c, _ := e.dialSFTP("alice-xt", e.alice)
	if err := put(c, callName(siretA, 1), []byte("<DemandeAPA/>")); err != nil {
		t.Fatal(err)
	}
	if code, out := e.cli(t, "audit", "checkpoint", "--new"); code != 0 {
		t.Fatalf("second checkpoint: %d %s", code, out)
	}
	e.app.Close() // nothing writes to the trail any more
	mustExec(t, raw, "DELETE FROM audit_events WHERE id > "+strconv.FormatInt(lastID, 10))
	mustExec(t, raw, "UPDATE audit_head SET last_id = "+strconv.FormatInt(lastID, 10)+", last_hash = '"+lastHash+"', mac = '"+mac+"' WHERE id = 1")
	if code, out := e.cli(t, "audit", "checkpoint", "--new"); code != 1 || !strings.Contains(out, "journal d'audit raccourci ou réécrit") {
		t.Fatalf("checkpoint of the older state: %d %s", code, out)
	}
	// The older checkpoint, appended again, now ends the file.
	path := filepath.Join(e.app.Config.DataDir, "audit-checkpoints.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(old)
	f.Close()
	if code, out := e.cli(t, "audit", "checkpoint", "--new"); code != 1 || !strings.Contains(out, "journal d'audit raccourci ou réécrit") {
		t.Fatalf("checkpoint re-anchored on the older checkpoint: %d %s", code, out)
	}
	if code, out := e.cli(t, "audit", "verify"); code != 1 || !strings.Contains(out, "fin de journal supprimée") {
		t.Fatalf("verify of the older state: %d %s", code, out)
	}
}
