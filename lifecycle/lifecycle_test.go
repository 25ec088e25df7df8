package lifecycle_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/lifecycle"
	"github.com/pigp/pigp/store"
)

const siret = "22940028800010"

type env struct {
	db    *store.DB
	dsn   string
	blobs *blob.Store
	life  *lifecycle.Lifecycle
	acct  *pigp.Account
	t0    time.Time
}

func newEnv(t *testing.T, kind string) *env {
	t.Helper()
	ctx := context.Background()
	db, blobs, dsn := testutil.NewStoreDSN(t, kind)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siret, Name: "Val-de-Marne"})
	acct := &pigp.Account{Login: "agent-xt", Name: "Agent", Email: "agent@example.fr", SIRETs: []string{siret},
		PasswordHash: "x", PasswordSetAt: t0, PasswordExpiresAt: pigp.PasswordExpiry(t0, 12), State: pigp.AccountActive}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	l := lifecycle.New(db, blob.NewFS(blobs), blobs, nil)
	l.BatchSize = 3 // several small transactions even in small tests
	return &env{db: db, dsn: dsn, blobs: blobs, life: l, acct: acct, t0: t0}
}

// publish stores a response made available at t.
func (e *env) publish(t *testing.T, name string, at time.Time) *pigp.Response {
	t.Helper()
	id := pigp.NewID()
	key := blob.Key(blob.KindResponse, id)
	if _, err := e.blobs.Put(key, strings.NewReader("<ReponseAPA/>")); err != nil {
		t.Fatal(err)
	}
	r := &pigp.Response{ID: id, Name: name, SIRET: siret, DocType: pigp.DocResponse, Size: 13, SHA256: "x",
		State: pigp.ResponseAvailable, AvailableAt: at, ExpiresAt: at.Add(pigp.DefaultRetention), StorageKey: key}
	if err := e.db.CreateResponse(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExpireResponses(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			ctx := context.Background()
			var old, young []*pigp.Response
			for i := 0; i < 7; i++ {
				old = append(old, e.publish(t, "old-"+string(rune('a'+i))+"_REP.xml", e.t0))
			}
			for i := 0; i < 2; i++ {
				young = append(young, e.publish(t, "young-"+string(rune('a'+i))+"_REP.xml", e.t0.Add(2*time.Second)))
			}
			// At retention − 1 s nothing expires.
			expired, deleted, err := e.life.ExpireResponses(ctx, e.t0.Add(pigp.DefaultRetention-time.Second))
			if err != nil || expired != 0 || deleted != 0 {
				t.Fatalf("at retention-1s: %d expired, %d deleted, %v", expired, deleted, err)
			}
			// At retention + 1 s the old ones expire, the young ones stay.
			at := e.t0.Add(pigp.DefaultRetention + time.Second)
			expired, deleted, err = e.life.ExpireResponses(ctx, at)
			if err != nil || expired != 7 || deleted != 7 {
				t.Fatalf("at retention+1s: %d expired, %d deleted, %v", expired, deleted, err)
			}
			for _, r := range old {
				got, _ := e.db.FindResponse(ctx, r.ID)
				if got.State != pigp.ResponseExpired || e.blobs.Exists(r.StorageKey) {
					t.Fatalf("%s: state %s, content exists %v", r.Name, got.State, e.blobs.Exists(r.StorageKey))
				}
			}
			for _, r := range young {
				if !e.blobs.Exists(r.StorageKey) {
					t.Fatalf("%s deleted before its expiry", r.Name)
				}
			}
			list, _ := e.db.ListAvailableResponses(ctx, []string{siret}, at)
			if len(list) != 2 {
				t.Fatalf("%d responses listed, want the 2 young ones", len(list))
			}
			// Running again changes nothing.
			expired, deleted, err = e.life.ExpireResponses(ctx, at)
			if err != nil || expired != 0 || deleted != 0 {
				t.Fatalf("rerun: %d expired, %d deleted, %v", expired, deleted, err)
			}
		})
	}
}

// TestExpireKilledHalfway interrupts the job after the rows changed and
// some content was deleted, then runs it again.
func TestExpireKilledHalfway(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	var rs []*pigp.Response
	for i := 0; i < 8; i++ {
		rs = append(rs, e.publish(t, "r"+string(rune('a'+i))+"_REP.xml", e.t0))
	}
	at := e.t0.Add(pigp.DefaultRetention)
	// Phase 1 of a run that is then killed: rows marked, content of two deleted.
	batch, err := e.db.ExpireResponses(ctx, at, 100, nil)
	if err != nil || len(batch) != 8 {
		t.Fatal(len(batch), err)
	}
	for _, r := range batch[:2] {
		e.blobs.Remove(r.StorageKey)
		e.db.MarkContentDeleted(ctx, []string{r.ID}, at)
	}
	e.blobs.Remove(batch[2].StorageKey) // deleted but not recorded: killed in between
	// The next run finishes without error and without deleting anything twice.
	expired, deleted, err := e.life.ExpireResponses(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if expired != 0 || deleted != 6 {
		t.Fatalf("rerun: %d expired, %d deleted; want 0 and 6", expired, deleted)
	}
	for _, r := range rs {
		if e.blobs.Exists(r.StorageKey) {
			t.Fatalf("%s content left", r.Name)
		}
	}
	if _, d, _ := e.life.ExpireResponses(ctx, at); d != 0 {
		t.Fatalf("third run deleted %d", d)
	}
}

func TestExpirePasswordsAndReminders(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	expiry := e.acct.PasswordExpiresAt
	run := func(at time.Time) (int, int) {
		t.Helper()
		x, r, err := e.life.ExpirePasswords(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return x, r
	}
	if x, r := run(expiry.AddDate(0, 0, -40)); x != 0 || r != 0 {
		t.Fatalf("40 days before: %d expired, %d reminders", x, r)
	}
	if x, r := run(expiry.AddDate(0, 0, -29)); x != 0 || r != 1 {
		t.Fatalf("29 days before: %d expired, %d reminders; want the 30-day reminder", x, r)
	}
	if x, r := run(expiry.AddDate(0, 0, -20)); x != 0 || r != 0 {
		t.Fatalf("20 days before: %d reminders, want none (sent once)", r)
	}
	if x, r := run(expiry.AddDate(0, 0, -6)); x != 0 || r != 1 {
		t.Fatalf("6 days before: %d expired, %d reminders; want the 7-day reminder", x, r)
	}
	if x, r := run(expiry.AddDate(0, 0, -1)); x != 0 || r != 0 {
		t.Fatalf("12 months − 1 day: %d expired, %d reminders", x, r)
	}
	if x, _ := run(expiry.AddDate(0, 0, 1)); x != 1 {
		t.Fatalf("12 months + 1 day: %d expired, want 1", x)
	}
	if x, _ := run(expiry.AddDate(0, 0, 2)); x != 0 {
		t.Fatalf("marked twice")
	}
	ns, _ := e.db.ListNotifications(ctx, "")
	var kinds []string
	for _, n := range ns {
		kinds = append(kinds, n.Kind)
		if n.Status != pigp.NotificationNotSent || n.Recipient != "agent@example.fr" {
			t.Errorf("notification %+v: want not sent (no SMTP), to the account", n)
		}
	}
	want := []string{pigp.NotifyPasswordReminder, pigp.NotifyPasswordReminder, pigp.NotifyPasswordExpired}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("notifications %v, want %v", kinds, want)
	}
	// A new password gets its own reminders.
	newSet := expiry.AddDate(0, 0, 3)
	e.db.SetPassword(ctx, e.acct.Login, "y", newSet, pigp.PasswordExpiry(newSet, 12), false)
	if _, r := run(pigp.PasswordExpiry(newSet, 12).AddDate(0, 0, -10)); r != 1 {
		t.Fatalf("new password: %d reminders, want 1", r)
	}
}

// smtpServer is a real SMTP server on loopback (STARTTLS, PLAIN auth)
// that keeps the messages it receives.
type smtpServer struct {
	mu       sync.Mutex
	messages []received
	failRcpt int // temporary failures to give before accepting
	addr     string
	pool     *x509.CertPool
}

type received struct {
	from string
	to   []string
	data []byte
}

type smtpSession struct {
	srv  *smtpServer
	msg  received
	auth bool
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "pigp" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.auth = true
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.msg.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.failRcpt > 0 {
		s.srv.failRcpt--
		return &smtp.SMTPError{Code: 451, Message: "try again later"}
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.srv.mu.Lock()
	s.srv.messages = append(s.srv.messages, s.msg)
	s.srv.mu.Unlock()
	return nil
}
func (s *smtpSession) Reset()        { s.msg = received{} }
func (s *smtpSession) Logout() error { return nil }

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := &smtpServer{pool: pool}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: srv}, nil }))
	s.Domain = "127.0.0.1"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return srv
}

func (s *smtpServer) sender() *lifecycle.SMTPSender {
	host, port, _ := net.SplitHostPort(s.addr)
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return &lifecycle.SMTPSender{Host: host, Port: p, Security: lifecycle.SMTPStartTLS, Username: "pigp", Password: "s3cret",
		From: "APA <noreply@apa.example.fr>", TLSConfig: &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1"}}
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.messages...)
}

func decodeBody(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return m, string(b)
}

func TestNotificationsBySMTP(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	srv := startSMTP(t)
	e.life.Sender = srv.sender()
	e.life.PortalURL = "https://apa.example.fr"

	r := e.publish(t, "2026_22940028800010_20261128103016_REP.xml", e.t0)
	d := &pigp.Deposit{ID: pigp.NewID(), AccountID: e.acct.ID, SIRET: siret}
	if err := e.life.ResponseAvailable(ctx, e.t0, d, r, "Contact.APA@val-de-marne.example.fr"); err != nil {
		t.Fatal(err)
	}
	// Queued twice (a retried processing run): still one notice per address.
	e.life.ResponseAvailable(ctx, e.t0, d, r, "contact.apa@val-de-marne.example.fr")
	e.life.ExpirePasswords(ctx, e.acct.PasswordExpiresAt.AddDate(0, 0, -5))

	sent, failed, err := e.life.SendNotifications(ctx, e.acct.PasswordExpiresAt.AddDate(0, 0, -5))
	if err != nil || sent != 3 || failed != 0 {
		t.Fatalf("sent %d, failed %d, %v; want 3 sent", sent, failed, err)
	}
	msgs := srv.received()
	if len(msgs) != 3 {
		t.Fatalf("server received %d messages, want 3", len(msgs))
	}
	var availability, reminder int
	for _, m := range msgs {
		hdr, body := decodeBody(t, m.data)
		subject, _ := new(mime.WordDecoder).DecodeHeader(hdr.Header.Get("Subject"))
		switch {
		case strings.Contains(subject, "disponible"):
			availability++
			for _, want := range []string{r.Name, "Fichier réponse APA", "jusqu'au 19 décembre 2026", "https://apa.example.fr"} {
				if !strings.Contains(body, want) {
					t.Errorf("availability notice lacks %q:\n%s", want, body)
				}
			}
			// Never any personal data from the file.
			for _, banned := range []string{"<", "NomNaissance", "Lefèvre", "Montant"} {
				if strings.Contains(body, banned) {
					t.Errorf("availability notice contains %q", banned)
				}
			}
		case strings.Contains(subject, "expire"):
			reminder++
			if m.to[0] != "agent@example.fr" || !strings.Contains(body, "agent-xt") || !strings.Contains(body, "28 novembre 2027") {
				t.Errorf("reminder to %v:\n%s", m.to, body)
			}
		default:
			t.Errorf("unexpected subject %q", subject)
		}
		if hdr.Header.Get("Content-Type") != "text/plain; charset=UTF-8" || m.from != "noreply@apa.example.fr" {
			t.Errorf("headers %v from %s", hdr.Header, m.from)
		}
	}
	if availability != 2 || reminder != 1 {
		t.Fatalf("%d availability notices, %d reminders; want 2 and 1", availability, reminder)
	}
	if sent, _, _ := e.life.SendNotifications(ctx, e.acct.PasswordExpiresAt); sent != 0 {
		t.Fatalf("resent %d notifications", sent)
	}
}

func TestNotificationRetry(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	srv := startSMTP(t)
	srv.failRcpt = 2
	e.life.Sender = srv.sender()
	e.life.MaxAttempts = 3
	r := e.publish(t, "a_REP.xml", e.t0)
	e.life.ResponseAvailable(ctx, e.t0, &pigp.Deposit{ID: "x", AccountID: e.acct.ID}, r, "")
	now := e.t0
	if sent, _, _ := e.life.SendNotifications(ctx, now); sent != 0 {
		t.Fatal("sent despite the failure")
	}
	// Not retried before the backoff.
	if sent, _, _ := e.life.SendNotifications(ctx, now.Add(30*time.Second)); sent != 0 {
		t.Fatal("retried before the backoff")
	}
	if sent, _, _ := e.life.SendNotifications(ctx, now.Add(time.Minute)); sent != 0 {
		t.Fatal("second attempt should fail too")
	}
	if sent, _, _ := e.life.SendNotifications(ctx, now.Add(3*time.Minute)); sent != 1 {
		t.Fatal("third attempt should succeed after 1+2 minutes of backoff")
	}
	ns, _ := e.db.ListNotifications(ctx, pigp.NotifyResponseAvailable)
	if len(ns) != 1 || ns[0].Status != pigp.NotificationSent || ns[0].Attempts != 3 {
		t.Fatalf("notification %+v", ns[0])
	}
	// An unreachable server: the notification ends failed, nothing blocks.
	e.life.Sender = &lifecycle.SMTPSender{Host: "127.0.0.1", Port: 1, Security: lifecycle.SMTPNone, From: "a@b.fr"}
	r2 := e.publish(t, "b_REP.xml", e.t0)
	e.life.ResponseAvailable(ctx, e.t0, &pigp.Deposit{ID: "y", AccountID: e.acct.ID}, r2, "")
	failed := 0
	for i := 0; i < 3; i++ {
		_, f, err := e.life.SendNotifications(ctx, now.Add(time.Duration(i+1)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		failed += f
	}
	if failed != 1 {
		t.Fatalf("%d failed, want 1 after 3 attempts", failed)
	}
}

func TestHousekeeping(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	kept := e.publish(t, "kept_REP.xml", e.t0)
	// Content with no row (crash between rename and commit).
	orphan := "retraits/ab/ab" + strings.Repeat("0", 30)
	e.blobs.Put(orphan, strings.NewReader("orphan"))
	// An upload abandoned a day ago on another node sharing the directory.
	other, err := blob.OpenAs(e.blobs.Dir(), blob.Owner{Node: "autre-noeud", PID: 1, Token: "00000001"})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := other.Create()
	old.Write([]byte("partial"))
	// This process's uploads: a fresh one and one idle for two days (a
	// running upload holds both).
	fresh, _ := e.blobs.Create()
	idle, _ := e.blobs.Create()
	now := time.Now()
	os.Chtimes(old.Name(), now.Add(-25*time.Hour), now.Add(-25*time.Hour))
	os.Chtimes(idle.Name(), now.Add(-48*time.Hour), now.Add(-48*time.Hour))
	past := now.Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(e.blobs.Dir(), "objects", orphan), past, past)
	os.Chtimes(filepath.Join(e.blobs.Dir(), "objects", kept.StorageKey), past, past)

	// An expired portal session and an expired failure counter, a live one of each.
	for i, until := range []time.Time{now.Add(-time.Minute), now.Add(time.Minute)} {
		if err := e.db.CreateSession(ctx, &pigp.PortalSession{TokenHash: fmt.Sprint("session", i), Caller: &pigp.Caller{AccountID: e.acct.ID, Login: e.acct.Login},
			CreatedAt: now.Add(-time.Hour), LastSeenAt: now.Add(-time.Hour), ExpiresAt: until}); err != nil {
			t.Fatal(err)
		}
		e.db.CountFailure(ctx, fmt.Sprint("ip|192.0.2.", i), until.Add(-time.Hour), time.Hour)
	}

	temps, orphans, err := e.life.Housekeeping(ctx, now)
	if err != nil || temps != 1 || orphans != 1 {
		t.Fatalf("housekeeping: %d temps, %d orphans, %v; want 1 and 1", temps, orphans, err)
	}
	if e.blobs.Exists(orphan) || !e.blobs.Exists(kept.StorageKey) {
		t.Fatal("wrong content removed")
	}
	if _, err := os.Stat(old.Name()); !os.IsNotExist(err) {
		t.Fatal("abandoned upload kept")
	}
	for _, tmp := range []*blob.Temp{fresh, idle} {
		if _, err := os.Stat(tmp.Name()); err != nil {
			t.Fatal("running upload removed")
		}
	}
	if _, err := e.db.FindSession(ctx, "session0"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("expired session kept: %v", err)
	}
	if _, err := e.db.FindSession(ctx, "session1"); err != nil {
		t.Fatalf("live session removed: %v", err)
	}
	if n, _ := e.db.SweepFailures(ctx, now); n != 0 {
		t.Fatalf("%d expired failure counters left by housekeeping", n)
	}
	if n, _ := e.db.CountFailure(ctx, "ip|192.0.2.1", now, time.Hour); n != 2 {
		t.Fatalf("live failure counter removed (count %d, want 2)", n)
	}
}

// TestHousekeepingAsOfFuture: run as of a date far ahead (`pigp expire
// --at`), housekeeping ages files on the real clock: another node's upload
// in progress, and content renamed into the store whose row is about to be
// committed, are kept.
func TestHousekeepingAsOfFuture(t *testing.T) {
	e := newEnv(t, "sqlite")
	other, _ := blob.OpenAs(e.blobs.Dir(), blob.Owner{Node: "autre-noeud", PID: 1, Token: "00000001"})
	running, _ := other.Create()
	running.Write([]byte("in progress"))
	pending := "depots/cd/cd" + strings.Repeat("1", 30)
	e.blobs.Put(pending, strings.NewReader("renamed, row not committed yet"))
	temps, orphans, err := e.life.Housekeeping(context.Background(), time.Now().AddDate(3, 0, 0))
	if err != nil || temps != 0 || orphans != 0 {
		t.Fatalf("housekeeping as of 3 years ahead: %d temps, %d orphans, %v; want nothing removed", temps, orphans, err)
	}
	if _, err := os.Stat(running.Name()); err != nil || !e.blobs.Exists(pending) {
		t.Fatal("a live file was removed")
	}
}

// TestExpiryAuditFailure: an expiry whose audit row cannot be written does
// not happen.
func TestExpiryAuditFailure(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			e.life.Audit = true
			ctx := context.Background()
			r := e.publish(t, "a_REP.xml", e.t0)
			at := e.t0.Add(pigp.DefaultRetention)
			restore := testutil.FailAuditInserts(t, kind, e.dsn, pigp.AuditExpiry)
			if _, _, err := e.life.ExpireResponses(ctx, at); err == nil {
				t.Fatal("expiry without its audit row")
			}
			got, _ := e.db.FindResponse(ctx, r.ID)
			if got.State != pigp.ResponseAvailable || !e.blobs.Exists(r.StorageKey) {
				t.Fatalf("response changed although its expiry failed: %+v", got)
			}
			restore()
			if n, _, err := e.life.ExpireResponses(ctx, at); err != nil || n != 1 {
				t.Fatalf("expiry after the failure: %d, %v", n, err)
			}
			evs, _ := e.db.ListAudit(ctx, pigp.AuditFilter{})
			if last := evs[len(evs)-1]; last.Action != pigp.AuditExpiry || last.Object != "a_REP.xml" {
				t.Fatalf("expiry row: %+v", last)
			}
		})
	}
}

// TestPasswordReminderCalendarDays: reminders are due by calendar days in
// Paris, as the portal counts them, and say how many days are left and
// the date ("1er décembre 2027").
func TestPasswordReminderCalendarDays(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	p := func(y int, m time.Month, d, hh, mm int) time.Time {
		return time.Date(y, m, d, hh, mm, 0, 0, pigp.Paris)
	}
	// Expires late on 1 December 2027; the job runs at 06:00 Paris.
	expires := p(2027, 12, 1, 23, 0)
	e.db.SetPassword(ctx, e.acct.Login, "y", expires.AddDate(-1, 0, 0), expires, false)
	run := func(at time.Time) int {
		t.Helper()
		_, r, err := e.life.ExpirePasswords(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(p(2027, 10, 31, 6, 0)); r != 0 {
		t.Fatalf("31 calendar days before: %d reminders", r)
	}
	// 30 days and 17 hours before, but the 30th calendar day.
	if r := run(p(2027, 11, 1, 6, 0)); r != 1 {
		t.Fatalf("30 calendar days before: %d reminders, want the 30-day one", r)
	}
	// 7 days and 17 hours before, but the 7th calendar day.
	if r := run(p(2027, 11, 24, 6, 0)); r != 1 {
		t.Fatalf("7 calendar days before: %d reminders, want the 7-day one", r)
	}
	ns, _ := e.db.ListNotifications(ctx, "")
	var bodies []string
	for _, n := range ns {
		if n.Kind == pigp.NotifyPasswordReminder {
			bodies = append(bodies, n.Subject+"\n"+n.Body)
		}
	}
	if len(bodies) != 2 || !strings.Contains(bodies[0], "expire dans 30 jours, le 1er décembre 2027") ||
		!strings.Contains(bodies[0], "Votre mot de passe expire le 1er décembre 2027") ||
		!strings.Contains(bodies[1], "expire dans 7 jours, le 1er décembre 2027") {
		t.Fatalf("reminders:\n%s", strings.Join(bodies, "\n---\n"))
	}
}
