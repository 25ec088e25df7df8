package main

// The security suite (issue 6): each test drives a running pigp with real
// clients: OpenSSH, pkg/sftp, x/crypto/ssh, HTTP.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
)

// TestSecurityOpenSSHAlgorithms forces OpenSSH to each insecure algorithm:
// no connection may be established. The control run shows strict KEX
// (Terrapin) in the server's KEXINIT.
func TestSecurityOpenSSHAlgorithms(t *testing.T) {
	needTool(t, "ssh")
	e := startEnv(t, "sqlite", nil)
	run := func(opts ...string) (string, error) {
		args := append(e.opensshArgs(), "-v", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no", "-p", e.port)
		args = append(args, opts...)
		args = append(args, "alice-xt@"+e.host, "true")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
		return string(out), err
	}
	for _, opt := range [][]string{
		{"-o", "KexAlgorithms=diffie-hellman-group14-sha1"},
		{"-o", "KexAlgorithms=diffie-hellman-group1-sha1"},
		{"-o", "KexAlgorithms=diffie-hellman-group-exchange-sha1"},
		{"-o", "Ciphers=aes128-cbc"},
		{"-o", "Ciphers=aes256-cbc"},
		{"-o", "Ciphers=3des-cbc"},
		{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"},
		{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1-96"},
		{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-md5"},
		{"-o", "HostKeyAlgorithms=ssh-rsa"},
		{"-o", "HostKeyAlgorithms=ssh-dss"},
	} {
		out, err := run(opt...)
		if err == nil || strings.Contains(out, "Authenticated to") || strings.Contains(out, "SSH2_MSG_NEWKEYS received") {
			t.Errorf("%v: connection established (err %v)\n%s", opt, err, out)
			continue
		}
		if !strings.Contains(out, "no matching") && !strings.Contains(out, "Bad SSH2") && !strings.Contains(out, "nsupported") {
			t.Errorf("%v: unexpected failure\n%s", opt, out)
		}
	}
	// Control: the default negotiation gets through the key exchange, and
	// the server's KEXINIT announces strict KEX.
	out, _ := run("-vv")
	if !strings.Contains(out, "SSH2_MSG_NEWKEYS received") {
		t.Fatalf("control run did not finish the key exchange:\n%s", out)
	}
	i := strings.Index(out, "peer server KEXINIT proposal")
	if i < 0 || !strings.Contains(out[i:], "kex-strict-s-v00@openssh.com") {
		t.Fatalf("no kex-strict-s-v00@openssh.com in the server's KEXINIT:\n%s", out)
	}
}

// TestSecurityThrottleAndBan attacks alice from 127.0.0.2: the pair is
// blocked, alice still gets in from 127.0.0.1, more failures ban the
// address on SSH and the portal alike; `pigp ban` lists and lifts it; all
// of it is audited.
func TestSecurityThrottleAndBan(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.Throttle.IPFreeFailures = 100
		c.Throttle.IPBanAfter = 8
		c.Throttle.BaseDelay = config.Duration(time.Second)
	})
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	const attacker = "127.0.0.2"
	try := func(src, login, pw string) (string, error) {
		c, banner, err := e.dialFrom(src, login, ssh.Password(pw))
		if err == nil {
			c.Close()
		}
		return banner, err
	}
	for i := range 4 {
		if _, err := try(attacker, "alice-xt", fmt.Sprintf("wrong-%d", i)); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	// The pair is blocked: even the right password is refused, unread.
	if banner, err := try(attacker, "alice-xt", e.alice); err == nil || !strings.Contains(banner, "Trop de tentatives") {
		t.Fatalf("blocked pair: err %v banner %q", err, banner)
	}
	// The owner, elsewhere, is not locked out.
	if _, err := try("127.0.0.1", "alice-xt", e.alice); err != nil {
		t.Fatalf("alice from another address during the attack: %v", err)
	}
	// More failures from the attacker's address, other logins: banned.
	for i := range 4 {
		try(attacker, fmt.Sprintf("nobody%d-xt", i), "x")
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := io.ReadAll(nc)
	nc.Close()
	if !strings.Contains(string(line), "adresse temporairement bloquée") || strings.Contains(string(line), "SSH-2.0") {
		t.Fatalf("banned address got %q", line)
	}
	// The portal shares the guard and the ban.
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}}).DialContext}
	p := newPortal(t, "http://"+e.app.Web.ListenAddr().String())
	p.client.Transport = tr
	token := p.csrf("/connexion")
	form := url.Values{"csrf": {token}, "identifiant": {"alice-xt"}, "motdepasse": {e.alice}}
	req, _ := http.NewRequest("POST", p.base+"/connexion", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, body := p.do(req); status != http.StatusTooManyRequests || !strings.Contains(body, "Trop de tentatives") {
		t.Fatalf("portal from a banned address: %d", status)
	}
	// Operators see and lift the ban.
	if code, out := e.cli(t, "ban", "list"); code != 0 || !strings.Contains(out, attacker) {
		t.Fatalf("ban list: %d %s", code, out)
	}
	if code, out := e.cli(t, "ban", "remove", "--ip", attacker); code != 0 {
		t.Fatalf("ban remove: %d %s", code, out)
	}
	if code, out := e.cli(t, "ban", "list"); code != 0 || strings.Contains(out, attacker) {
		t.Fatalf("ban list after remove: %d %s", code, out)
	}
	time.Sleep(1100 * time.Millisecond) // the pair's in-memory block (1 s) ends
	if _, err := try(attacker, "alice-xt", e.alice); err != nil {
		t.Fatalf("after the ban was lifted: %v", err)
	}
	evs := e.audit(t)
	failed := countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditLogin && a.Outcome == pigp.AuditFailed && a.IP == attacker
	})
	bans := countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditBan && a.Object == attacker })
	lifted := countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditOperator && strings.Contains(a.Object, "ban remove") && strings.Contains(a.Detail, "operateur-test")
	})
	ok := countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditLogin && a.Outcome == pigp.AuditOK })
	if failed != 8 || bans != 1 || lifted != 1 || ok != 2 {
		t.Fatalf("audit: %d failed logins (want 8), %d bans (1), %d lifts (1), %d logins (2)", failed, bans, lifted, ok)
	}
}

// TestSecurityTimingParity checks what makes failed logins of known and
// unknown logins take the same time, in a way no load on the machine can
// flip: each costs exactly one argon2id check (counted by the hashing
// limiter) and gets the same answer. The times themselves are compared by
// BenchmarkLoginTimingParity.
func TestSecurityTimingParity(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.Throttle.PairFreeFailures, c.Throttle.IPFreeFailures, c.Throttle.IPBanAfter, c.Throttle.AccountSlowAfter = 1000, 1000, 0, 0
	})
	if err := e.app.DB.SetAccountState(context.Background(), "bob-xt", pigp.AccountDisabled); err != nil {
		t.Fatal(err)
	}
	hashes := e.app.Exchange.Hashes
	answers := map[string]string{}
	for _, login := range []string{"alice-xt", "nobody-xt", "bob-xt", "alice-xt", "nobody-xt"} {
		before := hashes.Stats().Checks
		_, err := ssh.Dial("tcp", e.addr, sshConfig(login, "Wrong-Password-42!"))
		if err == nil {
			t.Fatal("wrong password accepted")
		}
		if n := hashes.Stats().Checks - before; n != 1 {
			t.Errorf("%s: %d argon2id checks for one failed login, want 1", login, n)
		}
		answers[login] = err.Error()
	}
	if answers["alice-xt"] != answers["nobody-xt"] || answers["alice-xt"] != answers["bob-xt"] {
		t.Errorf("different answers: %q", answers)
	}
}

// BenchmarkLoginTimingParity measures failed SSH logins of a known and an
// unknown login in interleaved pairs (known first in even pairs, unknown
// first in odd ones) and reports the median of the per-pair ratios of
// their times: load on the machine hits both logins of a pair alike.
//
//	go test -run XXX -bench LoginTimingParity -benchtime 40x ./cmd/pigp
func BenchmarkLoginTimingParity(b *testing.B) {
	e := startEnv(b, "sqlite", func(c *config.Config) {
		c.Throttle.PairFreeFailures, c.Throttle.IPFreeFailures, c.Throttle.IPBanAfter, c.Throttle.AccountSlowAfter = 1<<30, 1<<30, 0, 0
	})
	try := func(login string) time.Duration {
		start := time.Now()
		if _, err := ssh.Dial("tcp", e.addr, sshConfig(login, "Wrong-Password-42!")); err == nil {
			b.Fatal("wrong password accepted")
		}
		return time.Since(start)
	}
	try("alice-xt") // warm up
	var ratios []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var known, unknown time.Duration
		if i%2 == 0 {
			known, unknown = try("alice-xt"), try("nobody-xt")
		} else {
			unknown, known = try("nobody-xt"), try("alice-xt")
		}
		ratios = append(ratios, float64(known)/float64(unknown))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "known/unknown")
	b.ReportMetric(ratios[len(ratios)/10], "p10")
	b.ReportMetric(ratios[len(ratios)*9/10], "p90")
}

// TestSecurityKeyboardInteractivePTY resets alice's password with the CLI,
// then changes it through OpenSSH sftp on a pseudo-terminal, answering the
// French prompts; the new password then works.
func TestSecurityKeyboardInteractivePTY(t *testing.T) {
	needTool(t, "sftp")
	e := startEnv(t, "sqlite", nil)
	code, out := e.cli(t, "user", "reset-password", "--login", "alice-xt")
	if code != 0 {
		t.Fatalf("reset-password: %s", out)
	}
	temp := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	next := "Ncv-8tq!Rw2#Lpz6"
	args := append(e.opensshArgs(), "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"-P", e.port, "alice-xt@"+e.host)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sftp", args...)
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var buf bytes.Buffer
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	pos := 0
	expect := func(s string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			all := buf.String()
			mu.Unlock()
			if i := strings.Index(all[pos:], s); i >= 0 {
				pos += i + len(s)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("waiting for %q; terminal:\n%s", s, buf.String())
	}
	expect("Mot de passe (password)")
	io.WriteString(f, temp+"\n")
	expect("Nouveau mot de passe")
	io.WriteString(f, next+"\n")
	expect("Confirmation du nouveau mot de passe")
	io.WriteString(f, next+"\n")
	expect("sftp>")
	io.WriteString(f, "bye\n")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, buf.String())
	}
	c, _ := e.dialSFTP("alice-xt", next)
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.Dial("tcp", e.addr, sshConfig("alice-xt", temp)); err == nil {
		t.Fatal("the temporary password still works")
	}
	evs := e.audit(t)
	if countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditOperator && strings.Contains(a.Object, "reset-password") && a.Login == "alice-xt"
	}) != 1 || countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditPasswordChange && a.Outcome == pigp.AuditOK && a.Login == "alice-xt"
	}) != 1 {
		t.Fatalf("reset and change not audited: %d rows", len(evs))
	}
}

// forgedSigner presents one public key and signs with another private key.
type forgedSigner struct {
	pub  ssh.PublicKey
	sign ssh.Signer
}

func (s forgedSigner) PublicKey() ssh.PublicKey { return s.pub }
func (s forgedSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	return s.sign.Sign(r, data)
}

// TestSecurityPublicKeyScope is the CVE-2024-45337 pattern: a key offered
// (queried) but not proved never scopes the session.
func TestSecurityPublicKeyScope(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	_, bobPriv, _ := ed25519.GenerateKey(rand.Reader)
	bobKey, _ := ssh.NewSignerFromKey(bobPriv)
	k, _ := pigp.ParseSSHKey(ssh.MarshalAuthorizedKey(bobKey.PublicKey()))
	bob, _ := e.app.DB.FindAccountByLogin(ctx, "bob-xt")
	k.AccountID = bob.ID
	if err := e.app.DB.AddSSHKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	// alice offers bob's public key (queried, refused for alice), then signs
	// with her own: the session is alice's.
	c, err := ssh.Dial("tcp", e.addr, &ssh.ClientConfig{User: "alice-xt", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(forgedSigner{bobKey.PublicKey(), e.aliceKey}, e.aliceKey)}})
	if err != nil {
		t.Fatalf("alice with her key: %v", err)
	}
	c.Close()
	// As bob: bob's key is queried successfully, but the signature comes
	// from alice's private key: refused.
	if c, err := ssh.Dial("tcp", e.addr, &ssh.ClientConfig{User: "bob-xt", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(forgedSigner{bobKey.PublicKey(), e.aliceKey}, e.aliceKey)}}); err == nil {
		c.Close()
		t.Fatal("bob's session opened with alice's signature")
	}
	evs := e.audit(t)
	if n := countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditLogin && a.Outcome == pigp.AuditOK }); n != 1 {
		t.Fatalf("%d key logins audited, want 1", n)
	}
	for _, a := range evs {
		if a.Action == pigp.AuditLogin && a.Outcome == pigp.AuditOK && (a.Login != "alice-xt" || a.SIRET != siretA ||
			!strings.Contains(a.Detail, ssh.FingerprintSHA256(e.aliceKey.PublicKey()))) {
			t.Fatalf("key login scoped wrongly: %+v", a)
		}
	}
	// Bob's key offered for alice is recorded as a refused attempt.
	bobFP := ssh.FingerprintSHA256(bobKey.PublicKey())
	if n := countAudit(evs, func(a *pigp.AuditEvent) bool {
		return a.Action == pigp.AuditLogin && a.Outcome == pigp.AuditFailed && a.Login == "alice-xt" && strings.Contains(a.Detail, bobFP)
	}); n == 0 {
		t.Fatal("bob's key offered for alice is not audited as a failed attempt")
	}
}
