package main

// Hostile load (issue 11): bounded memory, descriptors and work per client.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
)

// TestHostileLoginFlood: 200 concurrent wrong-password logins (known and
// unknown logins) from 20 addresses against a `pigp serve` process, with
// the default settings; each attacker then keeps trying until alice,
// logging in from another address, has listed her directory. Every
// attempt is refused (by the password check, the hashing queue, the
// throttle or the ban), alice gets in while the flood goes on, and the
// process's peak resident memory (VmHWM) stays under 256 MiB: at most
// auth.max_concurrent_hashes argon2id checks (19 MiB each) run at once,
// whatever the number of logins. The only setting changed is how long a
// check may wait (60 s instead of 10), so that a very busy machine cannot
// time alice's login out. Nothing depends on timing: alice dials once
// every attacker has started, the attackers stop only once her session
// has answered, and each makes at most floodRounds attempts, so that the
// flood cannot run forever.
func TestHostileLoginFlood(t *testing.T) {
	bin := buildPigp(t)
	dataDir := t.TempDir()
	alice, bob := childData(t, dataDir)
	cfg := dataDir + "/pigp.yaml"
	if err := os.WriteFile(cfg, []byte("auth:\n  hash_wait: 60s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, bin, dataDir, 0, "--config", cfg)
	baseline := c.status(t, "VmHWM")

	const attackers, addresses, floodRounds = 200, 20, 20
	var wg, launched sync.WaitGroup
	var attempts, accepted, refused, flooding, afterAlice atomic.Int32
	start, stop := make(chan struct{}), make(chan struct{})
	for i := range attackers {
		wg.Add(1)
		launched.Add(1)
		flooding.Add(1)
		go func() {
			defer wg.Done()
			defer flooding.Add(-1)
			src := fmt.Sprintf("127.0.3.%d", 1+i%addresses)
			login := "alice-xt"
			if i%2 == 1 {
				login = fmt.Sprintf("nobody%d-xt", i)
			}
			<-start
			for n := range floodRounds {
				if n == 0 {
					launched.Done()
				}
				// Once alice's session has answered, one more attempt,
				// then the attacker stops.
				over := false
				select {
				case <-stop:
					over = true
					afterAlice.Add(1)
				default:
				}
				attempts.Add(1)
				cl, err := dialFromTo(c.sftp, src, sshConfig(login, fmt.Sprintf("Wrong-Password-%d-%d!", i, n)))
				if err == nil {
					cl.Close()
					accepted.Add(1)
				} else {
					refused.Add(1)
				}
				if over {
					return
				}
			}
		}()
	}
	halt := sync.OnceFunc(func() { close(stop) })
	defer func() { halt(); wg.Wait() }()
	close(start)
	// The owner logs in from elsewhere once every attacker has dialled.
	launched.Wait()
	honest, err := dialFromTo(c.sftp, "127.0.4.1", sshConfig("alice-xt", alice))
	if err != nil {
		t.Fatalf("alice from another address during the flood: %v", err)
	}
	sc, err := sftp.NewClient(honest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.ReadDir("/depot"); err != nil {
		t.Fatalf("alice's session during the flood: %v", err)
	}
	// The attackers not done with their attempts were trying all along
	// alice's login and session; each makes one more now.
	still, during := flooding.Load(), attempts.Load()
	halt()
	sc.Close()
	honest.Close()
	wg.Wait()
	t.Logf("%d attempts from %d attackers: %d started before alice's session answered, %d after it; %d attackers still flooding then",
		attempts.Load(), attackers, during, afterAlice.Load(), still)
	if afterAlice.Load() == 0 {
		t.Fatalf("no attempt started after alice's session answered: every attacker had made its %d attempts, the flood was over", floodRounds)
	}
	if accepted.Load() != 0 || refused.Load() != attempts.Load() {
		t.Fatalf("%d wrong passwords accepted, %d refused; want all %d refused", accepted.Load(), refused.Load(), attempts.Load())
	}
	peak := c.status(t, "VmHWM")
	t.Logf("pigp serve: VmHWM %d KiB before the flood, %d KiB after it; VmRSS %d KiB", baseline, peak, c.status(t, "VmRSS"))
	if peak >= 256<<10 {
		t.Errorf("peak resident memory %d MiB under 200 concurrent logins, want < 256 MiB", peak>>10)
	}
	// The server still serves, and bob (never attacked) gets in.
	cl, err := dialFromTo(c.sftp, "127.0.0.1", sshConfig("bob-xt", bob))
	if err != nil {
		t.Fatalf("bob after the flood: %v", err)
	}
	cl.Close()
	if strings.Contains(c.stderr.String(), "level=ERROR") {
		t.Errorf("ERROR lines in the log:\n%s", c.stderr.String())
	}
}

// TestHostileHandles: one session tries to open thousands of files and
// directories; it gets limits.max_open_handles (64) of them and a French
// refusal for the others, while bob deposits and the portal answers.
func TestHostileHandles(t *testing.T) {
	e, base := startWebEnv(t, "sqlite")
	resp := e.publish(siretA, "reponse.xml", []byte("<ReponseAPA/>"))
	ac, aconn := e.dialSFTP("alice-xt", e.alice)
	r := newRawSFTP(t, aconn)

	const tries = 3000
	paths := []string{"/retrait/" + resp.Name, "/historique/depots.csv", "/historique/documentation/DemandeAPA.xsd"}
	var handles []string
	uploads := map[string]bool{} // handles of uploads
	refusals := map[string]int{}
	var bobErr error
	bobDone := make(chan struct{})
	for i := range tries {
		var h string
		var code uint32
		var msg string
		switch i % 5 {
		case 0: // a directory
			h, code, msg = r.Opendir("/retrait")
		case 1: // an upload
			h, code, msg = r.Open("/depot/"+callName(siretA, i), 0x1a)
		default:
			h, code, msg = r.Open(paths[i%len(paths)], 0x1)
		}
		if code == 0 {
			handles = append(handles, h)
			uploads[h] = i%5 == 1
			continue
		}
		if code != 4 { // SSH_FX_FAILURE
			t.Fatalf("open %d: status %d %q, want SSH_FX_FAILURE", i, code, msg)
		}
		refusals[msg]++
		if i == tries/2 {
			// Meanwhile, another account deposits and the portal answers.
			go func() {
				defer close(bobDone)
				bc, _ := e.dialSFTP("bob-xt", e.bob)
				f, err := bc.Create("/depot/" + callName(siretB, 1))
				if err == nil {
					_, err = f.Write([]byte("<DemandeAPA/>"))
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				bobErr = err
			}()
			if status, _ := newPortal(t, base).get("/healthz"); status != http.StatusOK {
				t.Errorf("/healthz during the attack: %d", status)
			}
			if status, body := newPortal(t, base).get("/connexion"); status != http.StatusOK || !strings.Contains(body, "Connexion") {
				t.Errorf("/connexion during the attack: %d", status)
			}
		}
	}
	<-bobDone
	if bobErr != nil {
		t.Fatalf("bob's deposit while alice holds her handles: %v", bobErr)
	}
	if len(e.deposits(siretB)) != 1 {
		t.Fatal("bob's deposit not recorded")
	}
	if len(handles) != 64 {
		t.Fatalf("%d handles opened, want 64 (limits.max_open_handles)", len(handles))
	}
	if len(refusals) != 1 {
		t.Fatalf("refusals: %v, want one French message", refusals)
	}
	for msg, n := range refusals {
		if n != tries-64 || !strings.Contains(msg, "au plus 64 à la fois") || !strings.Contains(msg, "Fermez-en") {
			t.Fatalf("%d refusals %q", n, msg)
		}
	}
	// Closing handles gives them back.
	open := 0
	for _, h := range handles[10:] {
		if uploads[h] {
			open++
		}
	}
	for _, h := range handles[:10] {
		if code, msg := r.Close(h); code != 0 && code != 4 {
			t.Fatalf("close: %d %q", code, msg)
		}
	}
	for range 10 {
		if _, code, msg := r.Open(paths[1], 0x1); code != 0 {
			t.Fatalf("open after closing: %d %q", code, msg)
		}
	}
	if _, code, _ := r.Open(paths[1], 0x1); code != 4 {
		t.Fatal("the 65th handle after closing and reopening was not refused")
	}
	// The descriptors held are those of the open uploads and responses.
	alice, _ := e.app.DB.FindAccountByLogin(context.Background(), "alice-xt")
	if files, held := e.app.Exchange.Held(alice.ID); files > 64 || held != open {
		t.Fatalf("%d descriptors and %d uploads held; want at most 64 and the %d uploads open", files, held, open)
	}
	ac.Close()
	aconn.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if files, _ := e.app.Exchange.Held(0); files == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("descriptors still held after the session ended")
		}
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("ERROR lines in the log:\n%s", e.logs.String())
	}
}

// TestHostileDescriptorReserve runs `pigp serve` under `ulimit -n 400`
// with per-session and per-account limits set out of the way: one session
// opens files until the descriptors kept for files run out; it is refused
// in French, while new logins, the portal and its login page keep working
// on the reserved descriptors, and the accept loop never fails.
func TestHostileDescriptorReserve(t *testing.T) {
	bin := buildPigp(t)
	dataDir := t.TempDir()
	alice, bob := childData(t, dataDir)
	respFile := dataDir + "/reponse.xml"
	os.WriteFile(respFile, []byte("<ReponseAPA/>"), 0o600)
	var out syncBuffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
		return map[string]string{"PIGP_DATA_DIR": dataDir, "USER": "operateur-test"}[k]
	}}
	if code := m.Run(context.Background(), []string{"response", "publish", "--siret", siretA, respFile}); code != 0 {
		t.Fatalf("publish: %s", out.String())
	}
	cfg := dataDir + "/pigp.yaml"
	os.WriteFile(cfg, []byte("max_connections: 50\nmax_connections_per_ip: 50\nlimits:\n  max_open_handles: 100000\n"+
		"  max_uploads_per_account: 100000\n  reserved_descriptors: 100\n"), 0o600)
	// 400 - 50 (connections) - 100 (reserved): 250 descriptors for files.
	c := startChild(t, bin, dataDir, 400, "--config", cfg)
	if !strings.Contains(c.stderr.String(), "rlimit_nofile=400 files_budget=250") {
		t.Fatalf("descriptor budget not derived from the limit:\n%s", c.stderr.String())
	}
	ac, err := dialFromTo(c.sftp, "127.0.0.1", sshConfig("alice-xt", alice))
	if err != nil {
		t.Fatal(err)
	}
	r := newRawSFTP(t, ac)
	opened, refused := 0, 0
	var refusal string
	for range 2000 {
		_, code, msg := r.Open("/retrait/reponse.xml", 0x1)
		switch {
		case code == 0:
			opened++
		case code == 4:
			refused++
			refusal = msg
		default:
			t.Fatalf("open: %d %q", code, msg)
		}
	}
	if opened != 250 || !strings.Contains(refusal, "Serveur momentanément saturé") {
		t.Fatalf("%d files opened (want 250), %d refused with %q", opened, refused, refusal)
	}
	// On the reserved descriptors: a new login and its session, the
	// portal's health check, login page and a portal login.
	bc, err := dialFromTo(c.sftp, "127.0.0.2", sshConfig("bob-xt", bob))
	if err != nil {
		t.Fatalf("bob's login with the files at their cap: %v", err)
	}
	bs, err := sftp.NewClient(bc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.ReadDir("/historique"); err != nil {
		t.Fatalf("bob's listing: %v", err)
	}
	if _, err := bs.Create("/depot/" + callName(siretB, 1)); err == nil || !strings.Contains(err.Error(), "saturé") {
		t.Fatalf("bob's upload with the files at their cap: %v, want the French refusal", err)
	}
	p := newPortal(t, c.http)
	if status, _ := p.get("/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the files at their cap: %d", status)
	}
	p.login("bob-xt", bob)
	if status, body := p.get("/apa/retrait"); status != http.StatusOK || !strings.Contains(body, "Retrait") {
		t.Fatalf("portal page with the files at their cap: %d", status)
	}
	// Alice leaves: her descriptors come back, and bob deposits.
	ac.Close()
	var werr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var f *sftp.File
		if f, werr = bs.Create("/depot/" + callName(siretB, 2)); werr == nil {
			f.Write([]byte("<DemandeAPA/>"))
			werr = f.Close()
			break
		}
	}
	if werr != nil {
		t.Fatalf("bob's deposit after alice left: %v", werr)
	}
	bs.Close()
	bc.Close()
	log := c.stderr.String()
	if strings.Contains(log, "too many open files") || strings.Contains(log, "accept failed") || strings.Contains(log, "level=ERROR") {
		t.Fatalf("the process ran out of descriptors or logged an error:\n%s", log)
	}
}

// TestHostileRange sends Range headers with numbers out of range to the
// portal's download: each gets a 416 with a French page, never a 500 or an
// error in the log; a sound range still works.
func TestHostileRange(t *testing.T) {
	e, base := startWebEnv(t, "sqlite")
	resp := e.publish(siretA, "reponse.xml", []byte("<ReponseAPA>0123456789</ReponseAPA>"))
	p := newPortal(t, base)
	p.login("alice-xt", e.alice)
	get := func(rng string) (int, string) {
		req, _ := http.NewRequest("GET", base+"/apa/retrait/"+resp.Name, nil)
		req.Header.Set("Range", rng)
		return p.do(req)
	}
	many := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 9), ",")
	for _, rng := range []string{
		"bytes=9223372036854775807-", "bytes=0-99999999999999999999", "bytes=-99999999999999999999",
		"bytes=99999999999999999999-", "bytes=5-2", "bytes=1000-2000", "items=0-1", "bytes=abc", many,
	} {
		status, body := get(rng)
		if status != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(body, "Plage d") {
			t.Errorf("Range %q: %d, want 416 with a French message\n%.300s", rng, status, body)
		}
	}
	if status, body := get("bytes=12-21"); status != http.StatusPartialContent || body != "0123456789" {
		t.Errorf("sound range: %d %q", status, body)
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("ERROR lines in the log:\n%s", e.logs.String())
	}
}

// TestHostileAccountLimits: sessions per account and uploads per account
// are refused in French beyond their limit (SSH_FX_FAILURE, no ERROR log
// line), and given back.
func TestHostileAccountLimits(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.Limits.MaxSessionsPerAccount = 2
		c.Limits.MaxUploadsPerAccount = 3
	})
	var banner strings.Builder
	cfg := sshConfig("alice-xt", e.alice)
	cfg.BannerCallback = func(m string) error { banner.WriteString(m); return nil }
	c1, err := ssh.Dial("tcp", e.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ssh.Dial("tcp", e.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c3, err := ssh.Dial("tcp", e.addr, cfg); err == nil {
		c3.Close()
		t.Fatal("third session of alice accepted")
	}
	if !strings.Contains(banner.String(), "ce compte a déjà 2 sessions ouvertes (au plus 2 à la fois)") {
		t.Fatalf("banner %q", banner.String())
	}
	// By key too, and bob is not concerned.
	keyCfg := &ssh.ClientConfig{User: "alice-xt", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.aliceKey)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	if c3, err := ssh.Dial("tcp", e.addr, keyCfg); err == nil {
		c3.Close()
		t.Fatal("third session of alice accepted by key")
	}
	b, _ := e.dialSFTP("bob-xt", e.bob)
	if _, err := b.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	var c3 *ssh.Client
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c3, err = ssh.Dial("tcp", e.addr, keyCfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after one closed: %v", err)
		}
	}
	defer c3.Close()

	r := newRawSFTP(t, c1)
	for i := range 3 {
		if _, code, msg := r.Open("/depot/"+callName(siretA, i), 0x1a); code != 0 {
			t.Fatalf("upload %d: %d %q", i, code, msg)
		}
	}
	// A fourth upload of the account, from its other session.
	r3 := newRawSFTP(t, c3)
	_, code, msg := r3.Open("/depot/"+callName(siretA, 10), 0x1a)
	if code != 4 || !strings.Contains(msg, "ce compte a déjà 3 envois en cours (au plus 3 à la fois)") {
		t.Fatalf("fourth upload: %d %q", code, msg)
	}
	// A client at its limit is no failure of the server's: no ERROR line.
	if logs := e.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Fatalf("ERROR lines in the log for a limit refusal:\n%s", logs)
	}
	c1.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, code, _ = r3.Open("/depot/"+callName(siretA, 11), 0x1a); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("uploads not given back when the session ended")
		}
	}
}

// TestHostileAuditFlood: a session sending 50 refused names leaves 10
// refusal rows and, when it ends, one row counting the 40 others; 30
// logins refused by the throttle from one address leave 10 rows and a
// count once the address stays quiet.
func TestHostileAuditFlood(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.Throttle.IPFreeFailures, c.Throttle.IPBanAfter, c.Throttle.AccountSlowAfter = 1000, 0, 0
		c.Throttle.BaseDelay = config.Duration(time.Hour)
		c.Audit.RefusalSummaryAfter = config.Duration(500 * time.Millisecond)
	})
	// The rows are read without checking the chain while summaries may be
	// written concurrently; the chain is checked once everything is quiet.
	rows := func() []*pigp.AuditEvent {
		evs, err := e.app.DB.ListAudit(context.Background(), pigp.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	refusedNames := func() []*pigp.AuditEvent {
		var out []*pigp.AuditEvent
		for _, a := range rows() {
			if a.Action == pigp.AuditUploadRefused && a.Login == "alice-xt" {
				out = append(out, a)
			}
		}
		return out
	}
	_, conn := e.dialSFTP("alice-xt", e.alice)
	r := newRawSFTP(t, conn)
	for i := range 50 {
		if _, code, _ := r.Open(fmt.Sprintf("/depot/nom-refuse-%d.txt", i), 0x1a); code == 0 {
			t.Fatal("bad name accepted")
		}
	}
	if n := len(refusedNames()); n != 10 {
		t.Fatalf("%d refusal rows during the session, want 10", n)
	}
	conn.Close()
	var names []*pigp.AuditEvent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if names = refusedNames(); len(names) == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refusal rows after the session, want 11", len(names))
		}
	}
	if d := names[10].Detail; !strings.Contains(d, "40 refus supplémentaires") || !strings.Contains(d, "nom-refuse-49.txt") {
		t.Fatalf("summary row %+v", names[10])
	}

	const attacker = "127.0.5.1"
	for i := range 34 {
		c, _, err := e.dialFrom(attacker, "bob-xt", ssh.Password(fmt.Sprintf("wrong-%d", i)))
		if err == nil {
			c.Close()
			t.Fatal("wrong password accepted")
		}
	}
	// 3 free failures, the 4th blocks the pair, 30 refused unchecked.
	throttled := func() (failed, refused []*pigp.AuditEvent) {
		for _, a := range rows() {
			if a.Action == pigp.AuditLogin && a.IP == attacker {
				if a.Outcome == pigp.AuditFailed {
					failed = append(failed, a)
				} else if a.Outcome == pigp.AuditRefused {
					refused = append(refused, a)
				}
			}
		}
		return
	}
	var failed, ref []*pigp.AuditEvent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if failed, ref = throttled(); len(ref) == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d throttled rows, want 10 and a summary", len(ref))
		}
	}
	if len(failed) != 4 || !strings.Contains(ref[10].Detail, "20 refus supplémentaires") || ref[10].Login != "bob-xt" {
		t.Fatalf("%d failed rows (want 4), summary %+v", len(failed), ref[10])
	}
	e.audit(t) // the chain is intact
}

// TestHostileUnauthenticated: the connections of one address that have not
// authenticated are bounded (auth.max_unauthenticated_per_ip); the ones
// that have logged in no longer count, and other addresses are not
// concerned.
func TestHostileUnauthenticated(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) { c.Auth.MaxUnauthenticatedPerIP = 3 })
	const src = "127.0.6.1"
	// alice logs in from src first: her session does not count.
	c, _, err := e.dialFrom(src, "alice-xt", ssh.Password(e.alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, err := c.NewSession(); err != nil { // the server is past the handshake
		t.Fatal(err)
	} else {
		s.Close()
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	var idle []net.Conn
	for range 3 {
		nc, err := d.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		line := make([]byte, 8)
		if _, err := io.ReadFull(nc, line); err != nil || string(line) != "SSH-2.0-" {
			t.Fatalf("idle connection: %q %v", line, err)
		}
		idle = append(idle, nc)
	}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	msg, _ := io.ReadAll(nc)
	nc.Close()
	if !strings.Contains(string(msg), "trop de connexions en cours d'authentification depuis votre adresse") {
		t.Fatalf("4th unauthenticated connection got %q", msg)
	}
	if _, _, err := e.dialFrom("127.0.6.2", "bob-xt", ssh.Password(e.bob)); err != nil {
		t.Fatalf("another address: %v", err)
	}
	idle[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c2, _, err := e.dialFrom(src, "bob-xt", ssh.Password(e.bob))
		if err == nil {
			c2.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login from src once a place freed: %v", err)
		}
	}
	for _, nc := range idle[1:] {
		nc.Close()
	}
}

// TestHostilePortalSessions: an account's portal logins beyond
// limits.max_sessions_per_account end its least recently used session.
func TestHostilePortalSessions(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.Limits.MaxSessionsPerAccount = 2
	})
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	base := "http://" + e.app.Web.ListenAddr().String()
	var ps []*portal
	for range 3 {
		p := newPortal(t, base)
		p.login("alice-xt", e.alice)
		ps = append(ps, p)
	}
	if status, _ := ps[0].get("/applications"); status != http.StatusSeeOther {
		t.Fatalf("first session after two more logins: %d, want a redirect to the login page", status)
	}
	for _, p := range ps[1:] {
		if status, _ := p.get("/applications"); status != http.StatusOK {
			t.Fatalf("recent session: %d", status)
		}
	}
	b := newPortal(t, base)
	b.login("bob-xt", e.bob)
	if status, _ := ps[2].get("/applications"); status != http.StatusOK {
		t.Fatal("another account's login ended alice's session")
	}
}

// TestHostileKeyOffers: a client offering key after key (x/crypto/ssh with
// 20 keys, connection after connection) gets max_auth_tries keys looked up
// per connection; each connection that used them all counts as one failed
// login, so the throttle blocks the address and login as it would a
// password guesser, and the offers it then makes are refused unread; the
// refused keys and the throttled offers are recorded with flood control
// (10 rows of each, then a count). Alice's key from another address still
// gets in.
func TestHostileKeyOffers(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.Throttle.IPFreeFailures, c.Throttle.IPBanAfter, c.Throttle.AccountSlowAfter = 1000, 0, 0
		c.Throttle.BaseDelay = config.Duration(time.Hour)
		c.Audit.RefusalSummaryAfter = config.Duration(500 * time.Millisecond)
	})
	tries := e.app.Config.MaxAuthTries
	pairFree := e.app.Config.Throttle.PairFreeFailures
	var keys []ssh.Signer
	for range 20 {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, s)
	}
	const attacker = "127.0.7.1"
	conns := 2 * (pairFree + 1)
	for range conns {
		if c, _, err := e.dialFrom(attacker, "alice-xt", ssh.PublicKeys(keys...)); err == nil {
			c.Close()
			t.Fatal("unknown keys accepted")
		}
	}
	rows := func() (keyRefused, throttled []*pigp.AuditEvent) {
		evs, err := e.app.DB.ListAudit(context.Background(), pigp.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range evs {
			switch {
			case a.Action != pigp.AuditLogin || a.IP != attacker:
			case a.Outcome == pigp.AuditFailed && strings.Contains(a.Detail, "clé publique"):
				keyRefused = append(keyRefused, a)
			case a.Outcome == pigp.AuditRefused:
				throttled = append(throttled, a)
			}
		}
		return
	}
	// The first pairFree+1 connections have their keys looked up; the
	// last of them blocks the pair; the others are refused unread.
	looked := (pairFree + 1) * tries
	var refused, throttled []*pigp.AuditEvent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if refused, throttled = rows(); len(refused) == 11 && len(throttled) == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refused-key rows and %d throttled rows, want 10 of each and a summary", len(refused), len(throttled))
		}
	}
	if want := fmt.Sprintf("%d refus supplémentaires", looked-10); !strings.Contains(refused[10].Detail, want) {
		t.Fatalf("refused-key summary %q, want %q (%d keys looked up)", refused[10].Detail, want, looked)
	}
	if want := fmt.Sprintf("%d refus supplémentaires", (conns-pairFree-1)*tries-10); !strings.Contains(throttled[10].Detail, want) {
		t.Fatalf("throttled summary %q, want %q", throttled[10].Detail, want)
	}
	// Alice's own key from the blocked address is refused unread; from
	// another address it gets in.
	if c, banner, err := e.dialFrom(attacker, "alice-xt", ssh.PublicKeys(e.aliceKey)); err == nil {
		c.Close()
		t.Fatal("blocked address let in")
	} else if !strings.Contains(banner, "Trop de tentatives") {
		t.Fatalf("blocked address: banner %q", banner)
	}
	c, _, err := e.dialFrom("127.0.7.2", "alice-xt", ssh.PublicKeys(e.aliceKey))
	if err != nil {
		t.Fatalf("alice's key from another address: %v", err)
	}
	c.Close()
	e.audit(t) // the chain is intact
}

// TestRlimitRaisedToHard: `pigp serve` started with a soft RLIMIT_NOFILE
// (256) below its hard one raises the soft limit to the hard limit, as
// /proc/PID/limits of the process shows, and derives its descriptor
// budget from the raised limit.
func TestRlimitRaisedToHard(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	const soft = 256
	hard := min(rl.Max, 4096)
	if hard <= soft+1 {
		t.Skipf("hard RLIMIT_NOFILE %d leaves nothing to raise", rl.Max)
	}
	bin := buildPigp(t)
	// The soft limit is lowered by a wrapper that then execs pigp: the
	// server keeps its pid.
	wrapper := filepath.Join(t.TempDir(), "pigp-soft-nofile")
	script := fmt.Sprintf("#!/bin/sh\nulimit -Sn %d && ulimit -Hn %d && exec %q \"$@\"\n", soft, hard, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	c := startChild(t, wrapper, dataDir, 0)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			line = l
		}
	}
	f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
	if len(f) < 2 {
		t.Fatalf("no open files limit in /proc/%d/limits:\n%s", c.pid, b)
	}
	if want := strconv.FormatUint(hard, 10); f[0] != want || f[1] != want {
		t.Fatalf("pigp serve started with soft %d, hard %d: limits now soft %s, hard %s; want the soft limit raised to %s",
			soft, hard, f[0], f[1], want)
	}
	if want := fmt.Sprintf("rlimit_nofile=%d ", hard); !strings.Contains(c.stderr.String(), want) {
		t.Fatalf("the descriptor budget is not derived from the raised limit (no %q):\n%s", want, c.stderr.String())
	}
}
