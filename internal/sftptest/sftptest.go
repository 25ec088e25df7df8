// Package sftptest serves pigp's SFTP tree in process, for the tests of
// vfs and server: a real exchange (SQLite database and content store in
// a temporary directory, a clock the test moves) behind pkg/sftp's request
// server, as a session of the SSH server serves it (server.NewRequestServer,
// the packet shim included), and reached by pkg/sftp's client or by a raw
// packet writer (Raw) over an in-memory pipe. Nothing listens and no
// password is hashed: a session costs a pipe and a few goroutines.
package sftptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/server"
	"github.com/pigp/pigp/store"
	"github.com/pigp/pigp/vfs"
)

// Organisations of the environment: A and B never see each other's
// files; C is a valid SIRET no account acts for.
const (
	SIRETA = "22940028800010"
	SIRETB = "22750001100019"
	SIRETC = "21750001600019"
)

// Start is the environment's initial time: 12:00 in Paris, during the
// 2026 campaign.
var Start = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)

// Clock is a clock the test moves; it is safe for concurrent use (pkg/sftp
// calls the handlers from its workers).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Env is an exchange with two organisations and their accounts
// (agent-a for SIRETA, agent-b for SIRETB), served as SFTP sessions.
// Its fields may be changed before sessions are opened (Svc's settings,
// Shared.MaxHandles and Documentation).
type Env struct {
	TB  testing.TB
	Svc *exchange.Service
	DB  *store.DB
	// Blobs holds the committed contents (the filesystem backend on
	// Spool), Spool the uploads and responses being written.
	Blobs  blob.Backend
	Spool  *blob.Store
	Shared *vfs.Shared
	Clock  *Clock
	// Log receives the sessions' and the exchange's log, warnings and
	// errors (see Logs).
	Log  *slog.Logger
	A, B *pigp.Account
	// DSN is the SQLite file of the database (see Exec).
	DSN string

	logs     syncBuffer
	sessions atomic.Int64
}

// New returns a fresh environment, removed when the test ends.
func New(tb testing.TB) *Env {
	tb.Helper()
	ctx := context.Background()
	tmpl, err := template()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	dsn := filepath.Join(dir, "pigp.db")
	if err := os.WriteFile(dsn, tmpl, 0o600); err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(ctx, store.SQLite, dsn, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		tb.Fatal(err)
	}
	spool, err := blob.Open(filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &Env{TB: tb, DB: db, Blobs: blob.NewFS(spool), Spool: spool, Clock: &Clock{now: Start}, DSN: dsn}
	e.Log = slog.New(slog.NewTextHandler(io.MultiWriter(&e.logs, testWriter{tb}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	db.Now = e.Clock.Now
	// As cmd/pigp's openApp builds it, with the defaults of the contract.
	e.Svc = exchange.New(db, e.Blobs, spool, e.Log)
	e.Svc.Clock = e.Clock.Now
	e.Svc.Audit = db
	e.Svc.Refusals = exchange.NewAuditFlood(db, 10, time.Minute, e.Clock.Now, e.Log)
	tb.Cleanup(func() { e.Svc.Refusals.Close(context.Background()) }) // before the database closes
	e.Shared = vfs.NewSharedWith(map[string][]byte{"DemandeAPA.xsd": []byte("<xs:schema/>\n")})
	for _, login := range []string{"agent-a", "agent-b"} {
		a, err := db.FindAccountByLogin(ctx, login)
		if err != nil {
			tb.Fatal(err)
		}
		if login == "agent-a" {
			e.A = a
		} else {
			e.B = a
		}
	}
	return e
}

var (
	templateOnce  sync.Once
	templateBytes []byte
	templateErr   error
)

// template returns a database file, migrated once per test process, with
// the organisations and the accounts: each environment starts from a copy
// (a migration costs hundreds of synchronous commits).
func template() ([]byte, error) {
	templateOnce.Do(func() { templateBytes, templateErr = buildTemplate() })
	return templateBytes, templateErr
}

func buildTemplate() ([]byte, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sftptest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(ctx, store.SQLite, filepath.Join(dir, "pigp.db"), nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.Now = func() time.Time { return Start }
	if _, err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		return nil, err
	}
	for _, o := range []*pigp.Organisation{{SIRET: SIRETA, Name: "Département du Val-de-Marne"}, {SIRET: SIRETB, Name: "Ville de Paris"}} {
		if err := db.CreateOrganisation(ctx, o); err != nil {
			return nil, err
		}
	}
	for _, a := range []struct{ login, siret string }{{"agent-a", SIRETA}, {"agent-b", SIRETB}} {
		// No session of the harness logs in: the hash is never checked.
		acct := &pigp.Account{Login: a.login, Name: "Agent " + a.login, Email: a.login + "@example.fr", SIRETs: []string{a.siret},
			PasswordHash: "unused", PasswordSetAt: Start, PasswordExpiresAt: Start.AddDate(1, 0, 0), State: pigp.AccountActive}
		if err := db.CreateAccount(ctx, acct); err != nil {
			return nil, err
		}
	}
	copyPath := filepath.Join(dir, "template.db")
	if err := db.BackupInto(ctx, copyPath); err != nil {
		return nil, err
	}
	return os.ReadFile(copyPath)
}

// Caller returns a caller of account a over SFTP from ip.
func Caller(a *pigp.Account, ip string) *pigp.Caller {
	return &pigp.Caller{AccountID: a.ID, Login: a.Login, Name: a.Name, SIRETs: a.SIRETs, RemoteIP: ip,
		Protocol: pigp.ProtocolSFTP, PasswordExpiresAt: a.PasswordExpiresAt}
}

// CallerA returns a caller of agent-a (SIRETA).
func (e *Env) CallerA() *pigp.Caller { return Caller(e.A, "192.0.2.10") }

// CallerB returns a caller of agent-b (SIRETB).
func (e *Env) CallerB() *pigp.Caller { return Caller(e.B, "198.51.100.7") }

// FS returns the file system of caller's session. It is the one place
// the harness builds the vfs side, as cmd/pigp's App.StartSFTP does.
func (e *Env) FS(caller *pigp.Caller) *vfs.FS {
	return vfs.New(e.Svc, e.Shared, caller, e.Log)
}

// Session is one SFTP session served in process.
type Session struct {
	// Client is pkg/sftp's client of the session (nil for a raw session).
	Client *sftp.Client
	// Raw writes and reads the packets of a raw session (nil otherwise).
	Raw *Raw
	// FS is the session's file system.
	FS *vfs.FS

	conn, srv net.Conn
	done      chan struct{}
	once      sync.Once
}

// serve starts the request server of caller's session over one end of a
// pipe and returns the other end. As the SSH server does, it names the
// session in the caller (refusals are counted per session) and ends it
// in the exchange when the session closes.
func (e *Env) serve(caller *pigp.Caller) (*Session, net.Conn) {
	c := *caller
	c.Session = fmt.Sprintf("sftptest-%d", e.sessions.Add(1))
	fsys := e.FS(&c)
	cli, srv := net.Pipe()
	s := &Session{FS: fsys, conn: cli, srv: srv, done: make(chan struct{})}
	rs := server.NewRequestServer(srv, fsys.Handlers(), nil)
	go func() {
		defer close(s.done)
		rs.Serve()
		rs.Close()
		fsys.Close()
		e.Svc.EndSession(context.Background(), &c)
	}()
	e.TB.Cleanup(s.Close)
	return s, cli
}

// Session opens a session of caller with pkg/sftp's client.
func (e *Env) Session(caller *pigp.Caller) *Session {
	e.TB.Helper()
	s, cli := e.serve(caller)
	c, err := sftp.NewClientPipe(cli, cli)
	if err != nil {
		e.TB.Fatalf("sftp client: %v", err)
	}
	s.Client = c
	return s
}

// RawSession opens a session of caller driven packet by packet; Init
// (SSH_FXP_INIT, SSH_FXP_VERSION) is done.
func (e *Env) RawSession(caller *pigp.Caller) *Session {
	e.TB.Helper()
	s, cli := e.serve(caller)
	s.Raw = NewRaw(e.TB, cli, cli)
	s.Raw.Init()
	return s
}

// Close ends the session as a client does, and waits until the server has
// released it (open handles closed, file system closed).
func (s *Session) Close() {
	s.once.Do(func() {
		if s.Client != nil {
			s.Client.Close()
		}
		s.conn.Close()
	})
	<-s.done
}

// Drop cuts the connection from the server's side, as a network failure
// does, and waits until the server has released the session: its open
// handles get a transfer error.
func (s *Session) Drop() {
	s.srv.Close()
	<-s.done
	s.Close()
}

// Logs returns the log lines written so far (warnings and errors).
func (e *Env) Logs() string { return e.logs.String() }

// NoErrorLogged fails the test if an ERROR line was logged.
func (e *Env) NoErrorLogged() {
	e.TB.Helper()
	if strings.Contains(e.Logs(), "level=ERROR") {
		e.TB.Errorf("ERROR lines in the log:\n%s", e.Logs())
	}
}

// CallName returns a valid call-file name of siret, n seconds after an
// hour before the start of the clock: distinct n give distinct names.
func CallName(siret string, n int) string {
	ts := Start.Add(-time.Hour + time.Duration(n)*time.Second).In(apa.Paris)
	return apa.CallName{Campaign: ts.Year(), SIRET: siret, Timestamp: ts}.String()
}

// Deposits returns every deposit of siret, newest first.
func (e *Env) Deposits(siret string) []*pigp.Deposit {
	e.TB.Helper()
	ds, err := e.DB.ListDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siret}})
	if err != nil {
		e.TB.Fatal(err)
	}
	return ds
}

// Content returns the stored bytes of a deposit.
func (e *Env) Content(d *pigp.Deposit) []byte {
	e.TB.Helper()
	o, err := e.Blobs.Open(context.Background(), d.StorageKey)
	if err != nil {
		e.TB.Fatal(err)
	}
	defer o.Close()
	b := make([]byte, o.Size())
	if _, err := o.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		e.TB.Fatal(err)
	}
	return b
}

// ObjectExists reports whether the content store holds key.
func (e *Env) ObjectExists(key string) bool {
	e.TB.Helper()
	_, err := e.Blobs.Stat(context.Background(), key)
	if pigp.ErrorCode(err) == pigp.ENOTFOUND {
		return false
	} else if err != nil {
		e.TB.Fatal(err)
	}
	return true
}

// TempFiles lists the temporary uploads of the content store.
func (e *Env) TempFiles() []string {
	e.TB.Helper()
	entries, err := os.ReadDir(filepath.Join(e.Spool.Dir(), "tmp"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.TB.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

// Exec runs statements on the database through a connection of its own,
// for states no service method makes (a deposit processed long ago).
func (e *Env) Exec(stmts ...string) {
	e.TB.Helper()
	db, err := sql.Open("sqlite", e.DSN+"?_pragma=busy_timeout(10000)")
	if err != nil {
		e.TB.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			e.TB.Fatalf("%s: %v", q, err)
		}
	}
}

// Publish makes a response available to siret.
func (e *Env) Publish(siret, name string, content []byte) *pigp.Response {
	e.TB.Helper()
	r, err := e.Svc.Publish(context.Background(), siret, name, pigp.DocResponse, "", bytes.NewReader(content))
	if err != nil {
		e.TB.Fatal(err)
	}
	return r
}

// Put uploads data to /depot/name with pkg/sftp's client (WRITE, CREAT,
// TRUNC) and returns the error of the open, the write or the close.
func Put(c *sftp.Client, name string, data []byte) error {
	f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// SHA256 returns the hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Status returns the SFTP status code and the server's message of an
// error of pkg/sftp's client, or fails the test.
func Status(tb testing.TB, err error) (uint32, string) {
	tb.Helper()
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		tb.Fatalf("error %v (%T) is not an SFTP status", err, err)
	}
	// pkg/sftp keeps the message unexported; its Error() quotes it.
	m := statusText.FindStringSubmatch(se.Error())
	if m == nil {
		tb.Fatalf("status %q not understood", se.Error())
	}
	msg, err := strconv.Unquote(m[1])
	if err != nil {
		tb.Fatalf("status %q: %v", se.Error(), err)
	}
	return se.Code, msg
}

var statusText = regexp.MustCompile(`^sftp: (".*") \(`)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
