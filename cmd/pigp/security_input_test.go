package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
)

// TestSecurityHostileInput sends hostile names, SQL metacharacters and XML
// bombs to a running server: each is refused or stored literally, nothing
// is interpreted, nothing outside the caller's tree is touched.
func TestSecurityHostileInput(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.Throttle.IPFreeFailures, c.Throttle.IPBanAfter = 100, 0 // many failures from one address here
	})
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	ctx := context.Background()
	c, _ := e.dialSFTP("alice-xt", e.alice)
	before := e.diskFiles()
	good := callName(siretA, 1)
	names := []string{
		"../" + good, "../../etc/passwd", "/etc/passwd", `..\..\` + good, `depot\` + good, "a\x00" + good,
		"a\n" + good, "\x1b[31m" + good, "{user}.xml", "{user_name}" + good, "%USER%.xml", "$(id).xml", "`id`.xml",
		"<INCLUDE>/etc/passwd</INCLUDE>", "-rf.xml", strings.Repeat("A", 4096) + ".xml",
		strings.Replace(good, "2", "２", 1),       // fullwidth digit
		strings.Replace(good, ".xml", ".xмl", 1), // Cyrillic em
		strings.Replace(good, "x", "х", 1),       // Cyrillic ha
		"'; DROP TABLE deposits; --" + good, good + "' OR '1'='1",
		strings.Replace(good, siretA, siretB, 1), // another organisation's SIRET
		strings.Replace(good, siretA, "2294002880001' OR 1=1 --", 1),
	}
	for _, n := range names {
		for _, p := range []string{"/depot/" + n, n, "/depot/../" + n} {
			f, err := c.Create(p)
			if err == nil {
				_, werr := f.Write([]byte("<x/>"))
				cerr := f.Close()
				if werr == nil && cerr == nil {
					t.Errorf("hostile name accepted: %q", p)
				}
			}
		}
		if _, err := c.Stat("/depot/" + n); err == nil && n != good {
			t.Errorf("stat %q succeeded", n)
		}
	}
	for _, p := range []string{"/../../../../etc/passwd", "/depot/../../../etc/shadow", "/retrait/../../" + e.app.Config.DataDir + "/pigp.db"} {
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if strings.Contains(string(b), "root:") || len(b) > 0 {
				t.Errorf("read outside the tree through %q", p)
			}
		}
		// RealPath cleans within the virtual tree: the result is a virtual
		// path that does not exist there.
		if rp, err := c.RealPath(p); err == nil {
			if !strings.HasPrefix(rp, "/") {
				t.Errorf("realpath %q = %q", p, rp)
			} else if _, err := c.Stat(rp); err == nil {
				t.Errorf("realpath %q = %q exists", p, rp)
			}
		}
	}
	if got := e.deposits(siretA); len(got) != 0 {
		t.Fatalf("%d deposits from hostile names", len(got))
	}
	if after := e.diskFiles(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("disk changed:\n%v\n%v", before, after)
	}
	// Refusals are audited literally (escaped), never expanded.
	evs := e.audit(t)
	if countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditUploadRefused && a.Object == "{user}.xml" }) == 0 ||
		countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditUploadRefused && a.Object == "$(id).xml" }) == 0 ||
		countAudit(evs, func(a *pigp.AuditEvent) bool { return strings.Contains(a.Object, `a\x00`) }) == 0 {
		t.Error("hostile names not audited literally")
	}

	// SQL metacharacters in logins and passwords, over SSH and the portal.
	sqlish := []string{"' OR '1'='1", "alice-xt'--", `alice-xt"; DROP TABLE accounts; --`, "%", "_", "alice-xt\x00", "' UNION SELECT password_hash FROM accounts --"}
	p := newPortal(t, "http://"+e.app.Web.ListenAddr().String())
	for _, s := range sqlish {
		if cl, err := ssh.Dial("tcp", e.addr, sshConfig(s, s)); err == nil {
			cl.Close()
			t.Errorf("ssh login %q accepted", s)
		}
		form := url.Values{"csrf": {p.csrf("/connexion")}, "identifiant": {s}, "motdepasse": {s}}
		req, _ := http.NewRequest("POST", p.base+"/connexion", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, body := p.do(req)
		if status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
			t.Errorf("portal login %q: %d", s, status)
		}
		if strings.Contains(strings.ToLower(body), "sql") || strings.Contains(body, "SQLSTATE") {
			t.Errorf("portal login %q leaks database text", s)
		}
	}
	if _, err := e.app.DB.FindAccountByLogin(ctx, "alice-xt"); err != nil {
		t.Fatalf("accounts damaged: %v", err)
	}
	if cl, err := ssh.Dial("tcp", e.addr, sshConfig("bob-xt", e.bob)); err != nil {
		t.Fatalf("bob after the battery: %v", err)
	} else {
		cl.Close()
	}

	// XML bombs and external entities: answered with a report, memory bounded.
	bombs := map[string]string{
		"laughs": `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` + func() string {
			var b strings.Builder
			prev := "lol"
			for i := 1; i <= 9; i++ {
				fmt.Fprintf(&b, `<!ENTITY lol%d "%s">`, i, strings.Repeat("&"+prev+";", 10))
				prev = fmt.Sprintf("lol%d", i)
			}
			return b.String()
		}() + `]><lolz>&lol9;</lolz>`,
		"xxe": `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>`,
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse
	i := 10
	for _, doc := range bombs {
		i++
		f, err := c.Create("/depot/" + callName(siretA, i))
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(doc))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.app.Process.Run(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	t.Logf("XML bombs: heap in use %d MiB before, %d MiB after processing", heapBefore>>20, ms.HeapInuse>>20)
	if ms.HeapInuse > heapBefore+64<<20 {
		t.Errorf("heap grew by %d MiB", (ms.HeapInuse-heapBefore)>>20)
	}
	ds := e.deposits(siretA)
	if len(ds) != 2 {
		t.Fatalf("%d deposits, want 2", len(ds))
	}
	for _, d := range ds {
		if d.Status != pigp.DepositRejected {
			t.Errorf("bomb %s: status %s, want %s", d.ExternalName, d.Status, pigp.DepositRejected)
		}
	}
	rs, err := e.app.DB.ListAvailableResponses(ctx, []string{siretA}, time.Now())
	if err != nil || len(rs) != 2 {
		t.Fatalf("reports: %d %v", len(rs), err)
	}
	for _, r := range rs {
		b, err := readObject(e.app.Blobs, r.StorageKey)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "root:") || strings.Contains(string(b), "lollol") {
			t.Errorf("report %s interprets the entities", r.Name)
		}
	}
}

// TestSecuritySlowHandshakeFlood holds 500 connections that never finish
// the handshake: each is closed after the grace time, a legitimate login
// succeeds meanwhile, goroutines and memory come back to baseline, and the
// per-address limit refuses politely.
func TestSecuritySlowHandshakeFlood(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.LoginGraceTime = config.Duration(2 * time.Second)
		c.MaxConnectionsPerIP = 32 // the per-address refusal below, at the 33rd
	})
	// Warm up, then measure the baseline.
	if cl, err := ssh.Dial("tcp", e.addr, sshConfig("alice-xt", e.alice)); err != nil {
		t.Fatal(err)
	} else {
		cl.Close()
	}
	time.Sleep(200 * time.Millisecond)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseG, baseHeap := runtime.NumGoroutine(), ms.HeapInuse

	const perIP, ips = 20, 25 // 500 connections, within max_connections_per_ip (32 here)
	var conns []net.Conn
	start := time.Now()
	for i := range ips {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		for j := range perIP {
			nc, err := d.Dial("tcp", e.addr)
			if err != nil {
				t.Fatalf("flood connection %d: %v", i*perIP+j, err)
			}
			if j%2 == 0 {
				io.WriteString(nc, "SSH-2.0-slowloris\r\n") // then nothing
			}
			conns = append(conns, nc)
		}
	}
	runtime.ReadMemStats(&ms)
	peakG := runtime.NumGoroutine()
	// A legitimate login during the flood.
	c, cconn := e.dialSFTP("alice-xt", e.alice)
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatalf("legitimate session during the flood: %v", err)
	}
	c.Close()
	cconn.Close()
	// Per-address limit: the 33rd connection from one address is refused with a message.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, 1)}}
	var extra []net.Conn
	for range 32 {
		nc, err := d.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, nc)
	}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	msg, _ := io.ReadAll(nc)
	nc.Close()
	if !strings.Contains(string(msg), "trop de connexions simultanées depuis votre adresse") {
		t.Fatalf("33rd connection from one address got %q", msg)
	}
	// Every flood connection is closed by the server after the grace time.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var late, spoke int
	for _, nc := range append(conns, extra...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.SetReadDeadline(time.Now().Add(8 * time.Second))
			b, err := io.ReadAll(nc) // the server's version line (at most), then EOF
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				late++
			}
			if len(b) > 0 && !strings.HasPrefix(string(b), "SSH-2.0-") {
				spoke++
			}
		}()
	}
	wg.Wait()
	closedAfter := time.Since(start)
	for _, nc := range append(conns, extra...) {
		nc.Close()
	}
	if late > 0 || spoke > 0 {
		t.Fatalf("%d connections not closed by the server within 8 s, %d got something else than a version line", late, spoke)
	}
	// Back to baseline.
	var g int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if g = runtime.NumGoroutine(); g <= baseG+5 {
			break
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("flood: %d connections closed within %v; goroutines %d before, %d during, %d after; heap in use %d KiB before, %d KiB after",
		len(conns)+len(extra), closedAfter.Round(time.Millisecond), baseG, peakG, g, baseHeap>>10, ms.HeapInuse>>10)
	if g > baseG+5 {
		t.Errorf("goroutines: %d after the flood, baseline %d", g, baseG)
	}
	if ms.HeapInuse > baseHeap+16<<20 {
		t.Errorf("heap: %d KiB after the flood, baseline %d KiB", ms.HeapInuse>>10, baseHeap>>10)
	}
	c2, _ := e.dialSFTP("bob-xt", e.bob)
	if _, err := c2.ReadDir("/"); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}
