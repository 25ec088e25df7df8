package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// fxPermissionDenied is SSH_FX_PERMISSION_DENIED.
const fxPermissionDenied = 3

// TestEndToEnd runs a deposit and the OpenSSH client's round on each
// database. The rules of the SFTP tree (listings, names, staging files,
// downloads and removals, traversal, isolation) are tested in process by
// package vfs, with internal/sftptest.
func TestEndToEnd(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			t.Run("DepositPkgSFTP", func(t *testing.T) { testDepositPkgSFTP(t, e) })
			t.Run("OpenSSH", func(t *testing.T) { testOpenSSH(t, e) })
		})
	}
}

func testDepositPkgSFTP(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	before := len(e.deposits(siretA))
	name := callName(siretA, 1)
	data := randomBytes(3<<20 + 12345) // several MiB: concurrent, out-of-order writes
	f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ds := e.deposits(siretA)
	if len(ds) != before+1 {
		t.Fatalf("%d deposits, want %d", len(ds), before+1)
	}
	d := ds[0]
	if d.ExternalName != name || d.InternalName != name+"."+siretA || d.Size != int64(len(data)) ||
		d.SHA256 != sha(data) || d.Status != pigp.DepositReceived || d.ClientIP != "127.0.0.1" ||
		d.Protocol != pigp.ProtocolSFTP || !pigp.IsID(d.ID) || d.Login != "alice-xt" {
		t.Fatalf("deposit = %+v", d)
	}
	if got := e.content(d); !bytes.Equal(got, data) {
		t.Fatal("stored content differs from the upload")
	}
	if tmp := e.tmpFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	// The pending deposit is listed and STAT-able with its size.
	fi, err := c.Stat("/depot/" + name)
	if err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stat deposit: %v, %v", fi, err)
	}
	// setstat on an upload succeeds without effect.
	if err := c.Chtimes("/depot/"+name, time.Now(), time.Now()); err != nil {
		t.Fatalf("setstat times: %v", err)
	}
	if err := c.Chmod("/depot/"+name, 0o600); err != nil {
		t.Fatalf("setstat mode: %v", err)
	}
	// /depot is write-only: its deposits cannot be read back.
	if _, err := c.Open("/depot/" + name); err == nil {
		t.Fatal("reading a deposit must be refused")
	}
}

func testOpenSSH(t *testing.T, e *env) {
	needTool(t, "sftp", "sshpass")
	dir := t.TempDir()
	name := callName(siretA, 13)
	data := randomBytes(1<<20 + 7)
	os.WriteFile(filepath.Join(dir, name), data, 0o644)
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("x"), 0o644)
	resp := "2026_" + siretA + "_20261128120000_REP.xml"
	e.publish(siretA, resp, []byte("<ReponseAPA/>"))
	before := len(e.deposits(siretA))

	// Password authentication: put, ls, get, history.
	out, err := e.sftpBatch("alice-xt", e.alice, strings.Join([]string{
		"put -p " + name + " /depot/",
		"-put bad.txt /depot/bad.txt",
		"ls -l /depot",
		"get /retrait/" + resp + " got.xml",
		"get /historique/depots.csv depots.csv",
	}, "\n")+"\n", dir)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("bad name not reported as refused:\n%s", out)
	}
	ds := e.deposits(siretA)
	if len(ds) != before+1 || ds[0].ExternalName != name || ds[0].SHA256 != sha(data) {
		t.Fatalf("OpenSSH put: %d deposits (want %d), newest %+v", len(ds), before+1, ds[0])
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "got.xml")); string(b) != "<ReponseAPA/>" {
		t.Fatalf("downloaded %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "depots.csv")); !strings.Contains(string(b), ds[0].ID+";RECU;"+sha(data)) {
		t.Fatalf("depots.csv does not list the deposit:\n%s", b)
	}
	lsLine := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, name) {
			lsLine = l
		}
	}
	if !strings.HasPrefix(lsLine, "-") || !strings.Contains(lsLine, strconv.Itoa(len(data))) {
		t.Errorf("ls -l line %q", lsLine)
	}

	// Key authentication.
	name2 := callName(siretA, 14)
	os.WriteFile(filepath.Join(dir, name2), data[:1000], 0o644)
	out, err = e.sftpBatch("alice-xt", "", "put "+name2+" /depot/\nls /retrait\n", dir)
	if err != nil {
		t.Fatalf("sftp with key: %v\n%s", err, out)
	}
	if ds := e.deposits(siretA); ds[0].ExternalName != name2 || ds[0].SHA256 != sha(data[:1000]) {
		t.Fatalf("key upload not recorded: %+v", ds[0])
	}

	// Wrong password fails, and so does an unknown login.
	if out, err := e.sftpBatch("alice-xt", "wrong-password-123", "ls /\n", dir); err == nil {
		t.Fatalf("wrong password accepted:\n%s", out)
	}
}

// TestAuthentication checks refusals that must not tell whether a login
// exists, disabled accounts, expired passwords (with the French banner) and
// key scoping.
func TestAuthentication(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	dial := func(cfg *ssh.ClientConfig) error {
		c, err := ssh.Dial("tcp", e.addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	errUnknown := dial(sshConfig("nobody-xt", "Whatever-123-x"))
	errWrong := dial(sshConfig("alice-xt", "Whatever-123-x"))
	if errUnknown == nil || errWrong == nil {
		t.Fatal("bad credentials accepted")
	}
	if errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown login and wrong password differ:\n%v\n%v", errUnknown, errWrong)
	}
	if err := dial(sshConfig("alice-xt", e.alice)); err != nil {
		t.Fatalf("good password refused: %v", err)
	}
	keyCfg := &ssh.ClientConfig{User: "alice-xt", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.aliceKey)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
	if err := dial(keyCfg); err != nil {
		t.Fatalf("key refused: %v", err)
	}
	// Alice's key does not open bob's account.
	keyCfg.User = "bob-xt"
	if err := dial(keyCfg); err == nil {
		t.Fatal("alice's key opened bob's account")
	}

	// Disabled: same refusal as a wrong password.
	if err := e.app.DB.SetAccountState(ctx, "bob-xt", pigp.AccountDisabled); err != nil {
		t.Fatal(err)
	}
	errDisabled := dial(sshConfig("bob-xt", e.bob))
	if errDisabled == nil || errDisabled.Error() != errWrong.Error() {
		t.Fatalf("disabled account: %v", errDisabled)
	}
	e.app.DB.SetAccountState(ctx, "bob-xt", pigp.AccountActive)

	// Expired password: refused with the French banner.
	a, _ := e.app.DB.FindAccountByLogin(ctx, "bob-xt")
	past := time.Now().AddDate(-1, 0, -1)
	if err := e.app.DB.SetPassword(ctx, "bob-xt", a.PasswordHash, past, past.AddDate(1, 0, 0), false); err != nil {
		t.Fatal(err)
	}
	var banner string
	cfg := sshConfig("bob-xt", e.bob)
	cfg.BannerCallback = func(msg string) error { banner += msg; return nil }
	if err := dial(cfg); err == nil {
		t.Fatal("expired password accepted")
	}
	if !strings.Contains(banner, "expiré") || !strings.Contains(banner, "paierie départementale") {
		t.Fatalf("banner %q", banner)
	}
	// The banner is not shown for a wrong password of the same account.
	banner = ""
	cfg = sshConfig("bob-xt", "Wrong-password-123")
	cfg.BannerCallback = func(msg string) error { banner += msg; return nil }
	dial(cfg)
	if banner != "" {
		t.Fatalf("banner shown without the right password: %q", banner)
	}
}
