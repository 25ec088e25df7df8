package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
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

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/internal/testutil"
)

// Two organisations that must never see each other's files.
const (
	siretA = "22940028800010"
	siretB = "22750001100019"
)

// env is a running pigp with two accounts.
type env struct {
	t        testing.TB
	app      *App
	addr     string
	host     string
	port     string
	alice    string // password of alice-xt (acts for siretA)
	bob      string // password of bob-xt (acts for siretB)
	keyFile  string // alice's ed25519 private key (OpenSSH format)
	aliceKey ssh.Signer
	logs     *syncBuffer // the server's log lines, warnings and errors
	nodeEnv  []string    // more environment for the nodes startNode runs
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
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

// dbKinds lists the databases end-to-end tests run on.
var dbKinds = []string{"sqlite", "postgres"}

// startEnv starts pigp on 127.0.0.1 with a fresh database of the given kind.
func startEnv(t testing.TB, kind string, tweak func(c *config.Config)) *env {
	t.Helper()
	ctx := context.Background()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.SFTPListen = "127.0.0.1:0"
	c.ShutdownTimeout = config.Duration(5 * time.Second)
	if kind == "postgres" {
		c.DatabaseURL = testutil.NewPostgresDB(t)
	}
	if tweak != nil {
		tweak(&c)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := openApp(ctx, c, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartMetrics(); err != nil { // when the tweak set metrics_listen
		a.Close()
		t.Fatal(err)
	}
	if err := a.StartSFTP(); err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	e := &env{t: t, app: a, addr: a.SFTP.ListenAddr().String(), logs: logs}
	e.host, e.port, _ = net.SplitHostPort(e.addr)
	for _, o := range []*pigp.Organisation{{SIRET: siretA, Name: "Département du Val-de-Marne"}, {SIRET: siretB, Name: "Ville de Paris"}} {
		if err := a.DB.CreateOrganisation(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	e.alice = e.addAccount("alice-xt", siretA)
	e.bob = e.addAccount("bob-xt", siretB)

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.keyFile = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(e.keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	e.aliceKey, _ = ssh.NewSignerFromKey(priv)
	k, err := pigp.ParseSSHKey(ssh.MarshalAuthorizedKey(e.aliceKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := a.DB.FindAccountByLogin(ctx, "alice-xt")
	k.AccountID = acct.ID
	if err := a.DB.AddSSHKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) addAccount(login string, sirets ...string) string {
	e.t.Helper()
	pw := pigp.GeneratePassword(16)
	hash, _ := pigp.HashPassword(pw)
	now := time.Now().UTC()
	a := &pigp.Account{Login: login, Name: "Agent " + login, Email: login + "@example.fr", SIRETs: sirets,
		PasswordHash: hash, PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0), State: pigp.AccountActive}
	if err := e.app.DB.CreateAccount(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	return pw
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sshConfig returns a client config for password authentication.
func sshConfig(login, password string) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            login,
		Auth:            []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
}

// dialSFTP opens a pkg/sftp client session.
func (e *env) dialSFTP(login, password string) (*sftp.Client, *ssh.Client) {
	e.t.Helper()
	conn, err := ssh.Dial("tcp", e.addr, sshConfig(login, password))
	if err != nil {
		e.t.Fatalf("ssh dial %s: %v", login, err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		e.t.Fatalf("sftp client: %v", err)
	}
	e.t.Cleanup(func() { c.Close(); conn.Close() })
	return c, conn
}

// callEpoch is the base of the call-file timestamps of this test process:
// fixed once, so that callName gives the same name for the same n however
// long the tests take, and different names for different n (two rounds
// computed at different times can no longer meet on one second).
var callEpoch = time.Now().In(apa.Paris).Add(-time.Hour).Truncate(time.Second)

// callName returns a valid call-file name for siret, seconds apart per n.
func callName(siret string, n int) string {
	ts := callEpoch.Add(time.Duration(n) * time.Second)
	return apa.CallName{Campaign: ts.Year(), SIRET: siret, Timestamp: ts.Truncate(time.Second)}.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// deposits returns every deposit of siret.
func (e *env) deposits(siret string) []*pigp.Deposit {
	e.t.Helper()
	ds, err := e.app.DB.ListDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siret}})
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// content returns the stored bytes of a deposit.
func (e *env) content(d *pigp.Deposit) []byte {
	e.t.Helper()
	b, err := readObject(e.app.Blobs, d.StorageKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// readObject returns the whole object stored under key.
func readObject(b blob.Backend, key string) ([]byte, error) {
	o, err := b.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
}

// objectExists reports whether key holds an object (a store failure fails
// the test).
func objectExists(t testing.TB, b blob.Backend, key string) bool {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	if pigp.ErrorCode(err) == pigp.ENOTFOUND {
		return false
	} else if err != nil {
		t.Fatal(err)
	}
	return true
}

// diskFiles lists every regular file under the data directory except the
// database, with sizes, to show that nothing changed on disk.
func (e *env) diskFiles() []string {
	e.t.Helper()
	var out []string
	filepath.WalkDir(e.app.Config.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(d.Name(), "pigp.db") {
			return nil
		}
		info, _ := d.Info()
		out = append(out, fmt.Sprintf("%s:%d", strings.TrimPrefix(p, e.app.Config.DataDir), info.Size()))
		return nil
	})
	sort.Strings(out)
	return out
}

// tmpFiles lists the temporary uploads in the store.
func (e *env) tmpFiles() []string {
	entries, _ := os.ReadDir(filepath.Join(e.app.Spool.Dir(), "tmp"))
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

// publish makes a response available to siret.
func (e *env) publish(siret, name string, content []byte) *pigp.Response {
	e.t.Helper()
	r, err := e.app.Exchange.Publish(context.Background(), siret, name, pigp.DocResponse, "", bytes.NewReader(content))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// needTool skips (or fails in CI) when a command-line tool is missing.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI (installed by .ci/run)", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

// opensshArgs are the common options of OpenSSH clients against the test server.
func (e *env) opensshArgs() []string {
	return []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10"}
}

// sftpBatch runs OpenSSH sftp in batch mode with a password (through
// sshpass) or, when password is "", with alice's key.
func (e *env) sftpBatch(login, password, batch string, dir string) (string, error) {
	e.t.Helper()
	bf := filepath.Join(e.t.TempDir(), "batch")
	os.WriteFile(bf, []byte(batch), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e.t.Cleanup(cancel)
	var cmd *exec.Cmd
	if password != "" {
		args := append([]string{"-e", "sftp", "-oBatchMode=no"}, e.opensshArgs()...)
		args = append(args, "-oPubkeyAuthentication=no", "-P", e.port, "-b", bf, login+"@"+e.host)
		cmd = exec.CommandContext(ctx, "sshpass", args...)
		cmd.Env = append(os.Environ(), "SSHPASS="+password)
	} else {
		args := append(e.opensshArgs(), "-oIdentitiesOnly=yes", "-oPasswordAuthentication=no", "-i", e.keyFile,
			"-P", e.port, "-b", bf, login+"@"+e.host)
		cmd = exec.CommandContext(ctx, "sftp", args...)
	}
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
