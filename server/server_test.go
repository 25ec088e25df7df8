package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/sftptest"
	"github.com/pigp/pigp/server"
)

// now is the servers' clock in these tests.
var now = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)

// fakeAuth knows a few logins; the password of each is "pw-" + login.
// Failures are the exchange's: EUNAUTHORIZED for a wrong password, and
// one login per other outcome.
type fakeAuth struct {
	mu        sync.Mutex
	changed   map[string]string // login → new password
	keyLogins []string          // fingerprints audited
	keys      map[string]string // fingerprint → login
}

// Now is the servers' clock in these tests.
func (a *fakeAuth) Now() time.Time { return now }

var accountIDs = map[string]int64{"alice-xt": 1, "bob-xt": 2, "temp-xt": 3, "soon-xt": 4}

func (a *fakeAuth) caller(login, ip string) *pigp.Caller {
	return &pigp.Caller{AccountID: accountIDs[login], Login: login, SIRETs: []string{"22940028800010"}, RemoteIP: ip,
		Protocol: pigp.ProtocolSFTP, PasswordTemporary: login == "temp-xt", PasswordExpiresAt: now.AddDate(1, 0, 0)}
}

func (a *fakeAuth) Login(_ context.Context, ip, login, password, protocol string) (*pigp.Caller, error) {
	switch login {
	case "expired-xt":
		return nil, pigp.Errorf(pigp.EEXPIRED, "Votre mot de passe a expiré")
	case "broken-xt":
		return nil, errors.New("database is locked")
	case "throttled-xt":
		return nil, pigp.Errorf(pigp.ELIMIT, "Trop d'échecs de connexion : réessayez dans 2 minutes")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := "pw-" + login
	if p, ok := a.changed[login]; ok {
		want = p
	}
	if _, known := accountIDs[login]; !known || password != want || protocol != pigp.ProtocolSFTP {
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, "identifiant ou mot de passe incorrect")
	}
	c := a.caller(login, ip)
	if login == "soon-xt" {
		c.PasswordExpiresAt = now.Add(3 * 24 * time.Hour)
	}
	return c, nil
}

func (a *fakeAuth) ChangePassword(_ context.Context, c *pigp.Caller, current, next string) (*pigp.Caller, error) {
	if len(next) < 12 {
		return nil, pigp.Errorf(pigp.EINVALID, "Mot de passe trop court")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed == nil {
		a.changed = map[string]string{}
	}
	a.changed[c.Login] = next
	changed := *c
	changed.PasswordTemporary, changed.PasswordExpiresAt = false, now.AddDate(1, 0, 0)
	return &changed, nil
}

func (a *fakeAuth) AuthenticateKey(_ context.Context, login, fingerprint, ip, _ string) (*pigp.Caller, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys[fingerprint] != login {
		return nil, pigp.Errorf(pigp.EUNAUTHORIZED, "clé inconnue")
	}
	return a.caller(login, ip), nil
}

func (a *fakeAuth) AuditKeyLogin(_ context.Context, c *pigp.Caller, fingerprint string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keyLogins = append(a.keyLogins, c.Login+" "+fingerprint)
	return nil
}

func (a *fakeAuth) KeyOffersExhausted(context.Context, string, string, string) {}

// memFS serves pkg/sftp's in-memory file system.
type memFS struct{ h sftp.Handlers }

func (m memFS) Handlers() sftp.Handlers { return m.h }
func (m memFS) Close()                  {}

// counters follows sessions (server.Metrics and SessionEnded).
type counters struct {
	mu             sync.Mutex
	started, ended int
	endedCallers   []*pigp.Caller
}

func (c *counters) SFTPSessionStarted() { c.mu.Lock(); c.started++; c.mu.Unlock() }
func (c *counters) SFTPSessionEnded()   { c.mu.Lock(); c.ended++; c.mu.Unlock() }

type testServer struct {
	*server.Server
	auth *fakeAuth
	logs *syncWriter
	seen *counters
}

// startServer starts a server on 127.0.0.1:0 with the settings tweak
// sets; it is closed when the test ends.
func startServer(t *testing.T, tweak func(s *server.Server)) *testServer {
	t.Helper()
	signer := newSigner(t)
	logs := &syncWriter{}
	ts := &testServer{auth: &fakeAuth{keys: map[string]string{}}, seen: &counters{}, logs: logs}
	ts.Server = &server.Server{
		Addr:     "127.0.0.1:0",
		HostKeys: []ssh.Signer{signer},
		Auth:     ts.auth,
		NewFS:    func(*pigp.Caller) server.SessionFS { return memFS{sftp.InMemHandler()} },
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:  ts.seen,
		SessionEnded: func(c *pigp.Caller) {
			ts.seen.mu.Lock()
			ts.seen.endedCallers = append(ts.seen.endedCallers, c)
			ts.seen.mu.Unlock()
		},
	}
	if tweak != nil {
		tweak(ts.Server)
	}
	if err := ts.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.Close(ctx)
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (ts *testServer) addr() string { return ts.ListenAddr().String() }

func clientConfig(login, password string) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: login, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
}

// dial logs in from src (a 127.0.0.0/8 address) and returns the client,
// or the error and the banners shown.
func (ts *testServer) dial(src string, cfg *ssh.ClientConfig) (*ssh.Client, string, error) {
	var banner strings.Builder
	cfg.BannerCallback = func(msg string) error { banner.WriteString(msg); return nil }
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", ts.addr())
	if err != nil {
		return nil, "", err
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(nc, ts.addr(), cfg)
	if err != nil {
		nc.Close()
		return nil, banner.String(), err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), banner.String(), nil
}

// mustDial logs in as login or fails the test.
func (ts *testServer) mustDial(t *testing.T, src, login string) *ssh.Client {
	t.Helper()
	c, banner, err := ts.dial(src, clientConfig(login, "pw-"+login))
	if err != nil {
		t.Fatalf("login %s from %s: %v (banner %q)", login, src, err, banner)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// greeting opens a TCP connection from src and returns what the server
// says before anything is sent (its version line, or a refusal), with
// the connection (nil once the server closed it).
func (ts *testServer) greeting(t *testing.T, src string) (string, net.Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", ts.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := nc.Read(buf)
	if err != nil && err != io.EOF {
		t.Fatalf("greeting from %s: %v", src, err)
	}
	line := string(buf[:n])
	if strings.HasPrefix(line, "SSH-2.0-") {
		nc.SetReadDeadline(time.Time{})
		return line, nc
	}
	rest, _ := io.ReadAll(nc) // a refusal: the server closes
	nc.Close()
	return line + string(rest), nil
}

// eventually retries f until it reports true, for at most 10 s.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
	}
}

func sftpClient(c *ssh.Client) (*sftp.Client, error) { return sftp.NewClient(c) }

// sftpChannel opens a session channel of client running the sftp
// subsystem, and a raw SFTP client on it (Init done).
func sftpChannel(t *testing.T, client *ssh.Client) (ssh.Channel, <-chan *ssh.Request, *sftptest.Raw) {
	t.Helper()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"})); !ok || err != nil {
		t.Fatalf("subsystem sftp: %v, %v", ok, err)
	}
	r := sftptest.NewRaw(t, ch, ch)
	r.Init()
	return ch, reqs, r
}

// exitStatus waits for the channel's exit-status request.
func exitStatus(t *testing.T, reqs <-chan *ssh.Request) uint32 {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				t.Fatal("channel closed without an exit status")
			}
			if req.Type == "exit-status" && len(req.Payload) == 4 {
				return binary.BigEndian.Uint32(req.Payload)
			}
		case <-timeout:
			t.Fatal("no exit status after 10 s")
		}
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
