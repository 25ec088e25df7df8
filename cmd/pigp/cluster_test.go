package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

// TestCluster runs Debian's haproxy on 127.0.0.1 in front of two `pigp
// serve` processes sharing one PostgreSQL database and one content store
// (a shared data directory, then an S3 bucket on versitygw), and drives them with real clients through the balancer, each from its
// own 127.0.0.x address (HAProxy itself connects from 127.0.0.1, the only
// trusted address):
//
//   - 20 clients deposit while one node is killed with SIGKILL: every
//     acknowledged deposit is there once; cut clients reconnect through the
//     balancer and retry;
//   - a rolling restart (SIGTERM, wait, restart, then the other node)
//     during uploads: no transfer fails;
//   - audit rows, deposits, downloads, retraits.csv and bans show each
//     client's own address, never HAProxy's; a PROXY header from an
//     untrusted address is refused;
//   - a portal session opened on one node is served by the other, and a
//     logout on the other revokes it;
//   - 30 failed logins spread over both nodes ban the address once.
//
// Nothing is timed: every wait polls for a condition with a generous
// deadline.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: not in -short")
	}
	needTool(t, "haproxy")
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testCluster(t, kind) })
	}
}

func testCluster(t *testing.T, kind string) {
	ctx := context.Background()
	c := newCluster(t, kind)

	// Both nodes start at once on the same database and data directory:
	// one migrates, both end up with the same host key.
	c.nodes[0].start(t)
	c.nodes[1].start(t)
	for _, n := range c.nodes {
		c.ready(t, n)
	}
	if k0, k1 := c.hostKey(t, c.nodes[0]), c.hostKey(t, c.nodes[1]); k0 != k1 {
		t.Fatalf("the nodes present different host keys: %s and %s", k0, k1)
	}
	// The port chosen for haproxy's SFTP frontend is taken before haproxy
	// binds it: haproxy is started again on another.
	c.stealPort = true
	c.startHAProxy(t)

	t.Run("portal session across nodes", c.portalAcrossNodes)
	t.Run("untrusted PROXY header refused", c.untrustedProxyHeader)
	t.Run("kill -9 during deposits", c.killDuringDeposits)
	t.Run("rolling restart during uploads", c.rollingRestart)
	t.Run("downloads and retraits.csv", c.downloads)
	t.Run("failed logins over both nodes ban once", c.banAcrossNodes)

	// No row anywhere carries the balancer's address.
	events, err := c.db.ListAudit(ctx, pigp.AuditFilter{From: time.Now().Add(-24 * time.Hour), To: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 100 {
		t.Fatalf("only %d audit rows", len(events))
	}
	for _, e := range events {
		if e.IP == "127.0.0.1" {
			t.Errorf("audit row %d (%s %s) records the balancer's address", e.ID, e.Action, e.Object)
		}
	}
}

// cluster is the balancer, the two nodes and the shared database.
type cluster struct {
	t        *testing.T
	dir      string
	bin      string
	dbURL    string
	db       *store.DB
	contents blob.Backend // the nodes' content store, seen by the test
	alice    string       // password of alice-xt (siretA)
	nodes    [2]*clusterNode
	sftpAddr string // the balancer's SFTP frontend
	webAddr  string // the balancer's portal frontend
	sock     string // haproxy's stats socket
	next     atomic.Int64
	// stealPort, when set, takes the next port chosen for haproxy's SFTP
	// frontend before haproxy binds it (the race of freePort, on purpose).
	stealPort bool
}

type clusterNode struct {
	name               string
	bin, cfg           string
	sftpPort, httpPort int
	settings           string     // the configuration but the listen addresses
	log                *cliBuffer // every run of the node
	logFrom            int        // where the current run's log begins
	mu                 sync.Mutex
	cmd                *exec.Cmd
	done               chan error
}

// freePort returns a port free now. Another process may take it before
// the test binds it: whoever binds it (a node, haproxy) is started again
// on new ports when that happens (cluster.ready, startHAProxy).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// clusterStorage returns the settings that give both nodes one content
// store of the given kind, and that store as the test sees it: the shared
// data directory (fs), or a bucket of a versitygw started for the test (s3;
// the data directory then keeps only the shared host keys and each node's
// spool files).
func clusterStorage(t *testing.T, dir, kind string) (string, blob.Backend) {
	t.Helper()
	settings := "data_dir: " + dir + "\n"
	if kind != "s3" {
		st, err := blob.Open(filepath.Join(dir, "store"))
		if err != nil {
			t.Fatal(err)
		}
		return settings, blob.NewFS(st)
	}
	ts := newTestStore(t, "s3")
	var c config.Config
	ts.configure(&c, "")
	st := c.Storage
	b, err := s3.New(context.Background(), s3Config(st, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return settings + fmt.Sprintf("storage:\n  kind: s3\n  endpoint: %s\n  region: %s\n  bucket: %s\n  path_style: true\n"+
		"  access_key: %s\n  secret_key: %s\n  part_size: 5MiB\n  multipart_threshold: 5MiB\n",
		st.Endpoint, st.Region, st.Bucket, st.AccessKey, st.SecretKey), b
}

func newCluster(t *testing.T, kind string) *cluster {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, dbURL: testutil.NewPostgresDB(t), bin: filepath.Join(dir, "pigp")}
	if out, err := exec.Command("go", "build", "-o", c.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	storage, contents := clusterStorage(t, data, kind)
	c.contents = contents
	var err error
	if c.db, err = store.Open(ctx, store.Postgres, c.dbURL, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.db.Close() })
	if _, err := c.db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretA, Name: "Département du Val-de-Marne"}); err != nil {
		t.Fatal(err)
	}
	c.alice = pigp.GeneratePassword(16)
	hash, _ := pigp.HashPassword(c.alice)
	now := time.Now().UTC()
	if err := c.db.CreateAccount(ctx, &pigp.Account{Login: "alice-xt", Name: "Alice Martin", Email: "alice@example.fr",
		SIRETs: []string{siretA}, PasswordHash: hash, PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0),
		State: pigp.AccountActive}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), bin: c.bin, sftpPort: freePort(t), httpPort: freePort(t), log: &cliBuffer{}}
		n.cfg = filepath.Join(dir, n.name+".yaml")
		// Short throttle delays keep the ban scenario quick; the counting
		// is the production one.
		n.settings = storage + fmt.Sprintf(`database_url: %s
proxy_protocol:
  trusted: ["127.0.0.1/32"]
  header_timeout: 10s
http_trusted_proxies: ["127.0.0.1"]
drain_delay: 3s
shutdown_timeout: 120s
log_level: info
processing_schedule: "0 0 0 1 1 *"
throttle:
  base_delay: 10ms
  max_delay: 50ms
  base_tarpit: 1ms
  max_tarpit: 5ms
`, c.dbURL)
		n.writeConfig(t)
		c.nodes[i] = n
		t.Cleanup(func() {
			n.kill()
			if t.Failed() {
				t.Logf("--- log of %s:\n%s", n.name, n.log.String())
			}
		})
	}
	return c
}

// writeConfig writes the node's configuration with its current ports.
func (n *clusterNode) writeConfig(t *testing.T) {
	t.Helper()
	cfg := n.settings + fmt.Sprintf("sftp_listen: 127.0.0.1:%d\nhttp_listen: 127.0.0.1:%d\n", n.sftpPort, n.httpPort)
	if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.logFrom = len(n.log.String())
	fmt.Fprintf(n.log, "=== start %s\n", n.name)
	cmd := exec.Command(n.bin, "serve", "--config", n.cfg)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	n.cmd, n.done = cmd, done
}

// takePort binds 127.0.0.1:port until the test ends, as another process
// taking a port freePort chose would.
func takePort(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

// errPortTaken: a node, or haproxy, could not bind a port chosen for it.
var errPortTaken = errors.New("a port was taken by another process")

// ready waits for n, started, to be ready. A node that could not bind its
// ports (taken since freePort chose them) is started again on new ones,
// and haproxy, once running, is told (runtime API).
func (c *cluster) ready(t *testing.T, n *clusterNode) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := n.waitReady(t)
		if err == nil {
			return
		}
		if attempt == 5 {
			t.Fatalf("%s: %v, %d times", n.name, err, attempt)
		}
		t.Logf("%s: %v; starting it on other ports", n.name, err)
		n.sftpPort, n.httpPort = freePort(t), freePort(t)
		n.writeConfig(t)
		if c.sock != "" {
			c.moveServer(t, n)
		}
		n.start(t)
	}
}

// moveServer points haproxy's servers of n at its current ports.
func (c *cluster) moveServer(t *testing.T, n *clusterNode) {
	t.Helper()
	for _, cmd := range []string{
		fmt.Sprintf("set server pigp_sftp/%s addr 127.0.0.1 port %d", n.name, n.sftpPort),
		fmt.Sprintf("set server pigp_sftp/%s check-port %d", n.name, n.httpPort),
		fmt.Sprintf("set server pigp_portal/%s addr 127.0.0.1 port %d", n.name, n.httpPort),
	} {
		if out, err := c.haproxyCommand(cmd); err != nil {
			t.Fatalf("haproxy %q: %v %s", cmd, err, out)
		}
	}
}

// haproxyCommand sends one command to haproxy's stats socket.
func (c *cluster) haproxyCommand(cmd string) (string, error) {
	conn, err := net.Dial("unix", c.sock)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// waitReady polls the node's /readyz until it answers 200. It returns
// errPortTaken when the node exited because one of its ports was taken.
func (n *clusterNode) waitReady(t *testing.T) error {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-n.done:
			n.mu.Lock()
			run := n.log.String()[n.logFrom:]
			n.mu.Unlock()
			if strings.Contains(run, "address already in use") {
				return errPortTaken
			}
			t.Fatalf("%s exited before being ready: %v\n%s", n.name, err, n.log.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", n.httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", n.name, err, n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to end; it returns its error.
func (n *clusterNode) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	cmd.Process.Signal(sig)
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not stop after %v", n.name, sig)
		return nil
	}
}

func (n *clusterNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.ProcessState == nil {
		n.cmd.Process.Kill()
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// startHAProxy starts the balancer: TCP with send-proxy-v2 for SFTP, HTTP
// with X-Forwarded-For for the portal, both checking /readyz. HAProxy
// cannot bind port 0 and tell: when a port chosen for a frontend was taken
// meanwhile, it exits, and is started again on others.
//
// SFTP is balanced round robin here, not by source address as
// docs/exploitation.md recommends: each client's connections then
// alternate between the nodes, the hardest case for the shared failure
// counters, bans and exactly-once deposits this test checks.
func (c *cluster) startHAProxy(t *testing.T) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := c.tryHAProxy(t)
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("haproxy: %v, %d times", err, attempt)
		}
		t.Logf("haproxy: %v; starting it on other ports", err)
	}
	for _, n := range c.nodes {
		c.waitServer(t, "pigp_sftp", n.name, "UP")
		c.waitServer(t, "pigp_portal", n.name, "UP")
	}
}

// tryHAProxy starts haproxy on new frontend ports and waits for its stats
// socket; it returns errPortTaken when haproxy could not bind a port.
func (c *cluster) tryHAProxy(t *testing.T) error {
	t.Helper()
	sftpPort, webPort := freePort(t), freePort(t)
	if c.stealPort {
		c.stealPort = false
		takePort(t, sftpPort)
	}
	c.sftpAddr, c.webAddr = fmt.Sprintf("127.0.0.1:%d", sftpPort), fmt.Sprintf("127.0.0.1:%d", webPort)
	c.sock = filepath.Join(c.dir, "haproxy.sock")
	os.Remove(c.sock)
	n1, n2 := c.nodes[0], c.nodes[1]
	cfg := fmt.Sprintf(`global
	maxconn 4000
	stats socket %s mode 600 level admin

defaults
	timeout connect 5s
	timeout client 10m
	timeout server 10m
	timeout check 5s
	retries 3
	option redispatch 1

frontend sftp
	mode tcp
	bind 127.0.0.1:%d
	default_backend pigp_sftp

backend pigp_sftp
	mode tcp
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter 200ms fall 2 rise 2 send-proxy-v2
	server n1 127.0.0.1:%d check port %d
	server n2 127.0.0.1:%d check port %d

frontend portal
	mode http
	bind 127.0.0.1:%d
	http-request del-header Forwarded
	option forwardfor
	default_backend pigp_portal

backend pigp_portal
	mode http
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter 200ms fall 2 rise 2
	server n1 127.0.0.1:%d check
	server n2 127.0.0.1:%d check
`, c.sock, sftpPort, n1.sftpPort, n1.httpPort, n2.sftpPort, n2.httpPort, webPort, n1.httpPort, n2.httpPort)
	path := filepath.Join(c.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	log := &cliBuffer{}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			if strings.Contains(log.String(), "cannot bind socket") {
				return errPortTaken
			}
			t.Fatalf("haproxy exited:\n%s", log.String())
		default:
		}
		if _, err := c.haproxyCommand("show info"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's stats socket does not answer:\n%s", log.String())
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("--- haproxy:\n%s", log.String())
		}
	})
	return nil
}

// serverStatus reads a server's status from haproxy's stats socket.
func (c *cluster) serverStatus(backend, server string) string {
	conn, err := net.Dial("unix", c.sock)
	if err != nil {
		return ""
	}
	defer conn.Close()
	io.WriteString(conn, "show stat\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	recs, _ := csv.NewReader(bufio.NewReader(conn)).ReadAll()
	for _, r := range recs {
		if len(r) > 17 && r[0] == backend && r[1] == server {
			return r[17]
		}
	}
	return ""
}

func (c *cluster) waitServer(t *testing.T, backend, server, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := c.serverStatus(backend, server)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy: %s/%s is %q, want %q", backend, server, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// src returns the n-th client address, 127.0.0.(n+2): never HAProxy's.
func src(n int) string { return fmt.Sprintf("127.0.0.%d", n+2) }

// dialFrom opens a TCP connection to addr from the local address from.
func dialFrom(addr, from string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 15 * time.Second}
	return d.Dial("tcp", addr)
}

// sshOver runs the SSH handshake on nc (30 s at most).
func sshOver(nc net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nil
}

// clusterSFTP connects alice through the balancer from the address from.
func (c *cluster) clusterSFTP(from string) (*sftp.Client, *ssh.Client, error) {
	nc, err := dialFrom(c.sftpAddr, from)
	if err != nil {
		return nil, nil, err
	}
	sc, err := sshOver(nc, c.sftpAddr, sshConfig("alice-xt", c.alice))
	if err != nil {
		return nil, nil, err
	}
	fc, err := sftp.NewClient(sc)
	if err != nil {
		sc.Close()
		return nil, nil, err
	}
	return fc, sc, nil
}

// upload deposits content as name through the balancer from the address
// from, in one connection, in paced chunks (a transfer lasts a while, so
// that nodes stop in the middle of some). nil means the server
// acknowledged the deposit.
func (c *cluster) upload(from, name string, content []byte) error {
	fc, sc, err := c.clusterSFTP(from)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer sc.Close()
	defer fc.Close()
	f, err := fc.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	const chunk = 32 << 10
	for off := 0; off < len(content); off += chunk {
		if _, err := f.Write(content[off:min(off+chunk, len(content))]); err != nil {
			f.Close()
			return fmt.Errorf("write: %w", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// newFile returns a fresh deposit name and content.
func (c *cluster) newFile() (string, []byte) {
	n := int(c.next.Add(1))
	content := make([]byte, 192<<10+n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8)})
	r.Read(content)
	return callName(siretA, n), content
}

// checkDeposits checks that each acknowledged deposit is recorded once,
// with its content's SHA-256 and its client's own address.
func (c *cluster) checkDeposits(t *testing.T, acked map[string]string, from map[string]string) {
	t.Helper()
	ds, err := c.db.ListDeposits(context.Background(), pigp.DepositFilter{SIRETs: []string{siretA}})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, d := range ds {
		count[d.ExternalName]++
		if want, ok := acked[d.ExternalName]; ok {
			if d.SHA256 != want {
				t.Errorf("deposit %s: SHA-256 %s, want %s", d.ExternalName, d.SHA256, want)
			}
			if b, err := readObject(c.contents, d.StorageKey); err != nil || sha(b) != want {
				t.Errorf("deposit %s: stored object %s does not have its SHA-256 (%v)", d.ExternalName, d.StorageKey, err)
			}
			if d.ClientIP != from[d.ExternalName] {
				t.Errorf("deposit %s recorded from %s, want the client's %s", d.ExternalName, d.ClientIP, from[d.ExternalName])
			}
		}
	}
	for name := range acked {
		if count[name] != 1 {
			t.Errorf("acknowledged deposit %s recorded %d times, want once", name, count[name])
		}
	}
}

// killDuringDeposits: 20 clients deposit through the balancer; one node
// is killed with SIGKILL mid-way. Every acknowledged deposit is there
// once; cut clients reconnect through the balancer (to the other node)
// and retry until acknowledged.
func (c *cluster) killDuringDeposits(t *testing.T) {
	const clients, perClient = 20, 6
	var mu sync.Mutex
	acked, from := map[string]string{}, map[string]string{}
	var done, cuts atomic.Int32
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := src(i)
			for range perClient {
				name, content := c.newFile()
				deadline := time.Now().Add(3 * time.Minute)
				for {
					err := c.upload(addr, name, content)
					if err == nil {
						mu.Lock()
						acked[name], from[name] = sha(content), addr
						mu.Unlock()
						done.Add(1)
						break
					}
					if cuts.Add(1) <= 5 {
						t.Logf("client %s: %s cut (%v), retrying", addr, name, err)
					}
					if time.Now().After(deadline) {
						t.Errorf("client %s: %s never acknowledged: %v", addr, name, err)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	// Kill node 1 once deposits flow on both nodes.
	for done.Load() < 30 {
		time.Sleep(50 * time.Millisecond)
	}
	killed := c.nodes[0]
	if err := killed.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("kill -9: the node exited cleanly")
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if cuts.Load() == 0 {
		t.Fatal("no client was cut by the kill: the scenario tested nothing")
	}
	t.Logf("%d deposits acknowledged, %d attempts cut and retried", len(acked), cuts.Load())
	if len(acked) != clients*perClient {
		t.Fatalf("%d deposits acknowledged, want %d", len(acked), clients*perClient)
	}
	// A client cut after the node committed its deposit but before the
	// answer reached it retries on the other node: exactly-once deposits
	// (same account, name and SHA-256 within duplicate_window answered OK)
	// keep it single.
	c.checkDeposits(t, acked, from)
	// Back to two nodes for what follows.
	killed.start(t)
	c.ready(t, killed)
	c.waitServer(t, "pigp_sftp", killed.name, "UP")
	c.waitServer(t, "pigp_portal", killed.name, "UP")
}

// rollingRestart: clients keep uploading (one connection per file) while
// each node in turn gets SIGTERM, is waited for, restarted and seen up by
// the balancer. No transfer may fail.
func (c *cluster) rollingRestart(t *testing.T) {
	const clients = 20
	var mu sync.Mutex
	acked, from := map[string]string{}, map[string]string{}
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := src(i)
			for {
				select {
				case <-stop:
					return
				default:
				}
				name, content := c.newFile()
				err := c.upload(addr, name, content)
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s from %s: %v", name, addr, err))
				} else {
					acked[name], from[name] = sha(content), addr
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitMore := func(n int) {
		deadline := time.Now().Add(2 * time.Minute)
		for count() < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitMore(20)
	for i, n := range c.nodes {
		if err := n.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit 0", n.name, err)
		}
		if !strings.Contains(n.log.String(), "draining: /readyz answers 503") {
			t.Errorf("%s did not drain", n.name)
		}
		waitMore(count() + 10) // the other node alone serves meanwhile
		if i == 0 {
			// Another process took the first node's SFTP port while it
			// was down: it comes back on other ports, which haproxy is
			// told through its runtime API.
			takePort(t, n.sftpPort)
		}
		n.start(t)
		c.ready(t, n)
		c.waitServer(t, "pigp_sftp", n.name, "UP")
		c.waitServer(t, "pigp_portal", n.name, "UP")
		waitMore(count() + 10)
	}
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("failed transfer during the rolling restart: %s", f)
	}
	t.Logf("%d uploads during the rolling restart, %d failed", len(acked), len(failures))
	c.checkDeposits(t, acked, from)
}

// portalAcrossNodes: a login on node 1, pages served by node 2 with the
// same cookie, a logout on node 2 that revokes the session on node 1; a
// login through the balancer is recorded with the browser's address.
func (c *cluster) portalAcrossNodes(t *testing.T) {
	const browserIP = "127.0.0.40"
	b := newClusterBrowser(t, browserIP)
	n1 := fmt.Sprintf("http://127.0.0.1:%d", c.nodes[0].httpPort)
	n2 := fmt.Sprintf("http://127.0.0.1:%d", c.nodes[1].httpPort)
	b.login(t, n1, "alice-xt", c.alice)
	if r := b.get(t, n2+"/applications"); r.status != http.StatusOK || !strings.Contains(r.body, "ALICE MARTIN") {
		t.Fatalf("node 2 with node 1's cookie: %d", r.status)
	}
	if r := b.get(t, n1+"/apa/retrait"); r.status != http.StatusOK {
		t.Fatalf("node 1: %d", r.status)
	}
	tok := b.csrf(t, n2+"/applications")
	if r := b.post(t, n2+"/deconnexion", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout on node 2: %d", r.status)
	}
	if r := b.get(t, n1+"/applications"); r.status != http.StatusSeeOther || r.location != "/connexion" {
		t.Fatalf("node 1 after the logout on node 2: %d %q, want 303 /connexion", r.status, r.location)
	}

	// Through the balancer (X-Forwarded-For from the trusted 127.0.0.1):
	// the login form and its post may reach different nodes.
	const viaIP = "127.0.0.41"
	v := newClusterBrowser(t, viaIP)
	v.login(t, "http://"+c.webAddr, "alice-xt", c.alice)
	for range 4 {
		if r := v.get(t, "http://"+c.webAddr+"/apa/depot"); r.status != http.StatusOK {
			t.Fatalf("through the balancer: %d", r.status)
		}
	}
	events, err := c.db.ListAudit(context.Background(), pigp.AuditFilter{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Action == pigp.AuditLogin && e.Outcome == pigp.AuditOK {
			seen[e.IP] = true
		}
	}
	if !seen[browserIP] || !seen[viaIP] {
		t.Fatalf("portal logins recorded from %v, want %s (direct) and %s (through the balancer)", seen, browserIP, viaIP)
	}
}

// untrustedProxyHeader: a PROXY header sent straight to a node from an
// address that is not the balancer's is refused, whatever it claims.
func (c *cluster) untrustedProxyHeader(t *testing.T) {
	n := c.nodes[0]
	addr := fmt.Sprintf("127.0.0.1:%d", n.sftpPort)
	nc, err := dialFrom(addr, "127.0.0.60")
	if err != nil {
		t.Fatal(err)
	}
	claimed := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 40000}
	if _, err := proxyproto.HeaderProxyFromAddrs(2, claimed, nc.RemoteAddr()).WriteTo(nc); err != nil {
		t.Fatal(err)
	}
	if sc, err := sshOver(nc, addr, sshConfig("alice-xt", c.alice)); err == nil {
		sc.Close()
		t.Fatal("login with a PROXY header from an untrusted address succeeded")
	}
	deadline := time.Now().Add(30 * time.Second)
	refused := regexp.MustCompile(`msg="connection refused: PROXY protocol header from an address not in proxy_protocol.trusted".* ip=127\.0\.0\.60`)
	for !refused.MatchString(n.log.String()) {
		if time.Now().After(deadline) {
			t.Fatal("the refusal is not in the node's log")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The same client without a header is served, with its own address.
	nc, err = dialFrom(addr, "127.0.0.60")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sshOver(nc, addr, sshConfig("alice-xt", c.alice))
	if err != nil {
		t.Fatalf("plain connection from an untrusted address: %v", err)
	}
	sc.Close()
	events, _ := c.db.ListAudit(context.Background(), pigp.AuditFilter{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	var direct bool
	for _, e := range events {
		if e.IP == "203.0.113.9" {
			t.Fatalf("the claimed address was recorded: %+v", e)
		}
		direct = direct || (e.Action == pigp.AuditLogin && e.IP == "127.0.0.60")
	}
	if !direct {
		t.Fatal("the plain login is not recorded from 127.0.0.60")
	}
}

// downloads: a response downloaded through the balancer is recorded, and
// shown in retraits.csv, with the client's address.
func (c *cluster) downloads(t *testing.T) {
	const clientIP = "127.0.0.70"
	content := []byte("<ReponseAPA/>\n")
	file := filepath.Join(c.dir, "reponse.xml")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	// Published by the operator's command, on the shared database and store.
	if out, err := exec.Command(c.bin, "response", "publish", "--config", c.nodes[0].cfg, "--siret", siretA,
		"--name", "2026_"+siretA+"_20260101120000_REP.xml", file).CombinedOutput(); err != nil {
		t.Fatalf("pigp response publish: %v\n%s", err, out)
	}
	fc, sc, err := c.clusterSFTP(clientIP)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	defer fc.Close()
	f, err := fc.Open("/retrait/2026_" + siretA + "_20260101120000_REP.xml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("download: %q, %v", got, err)
	}
	// retraits.csv, read through the balancer (possibly from the other node).
	var rows [][]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := fc.Open("/historique/retraits.csv")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\ufeff"))))
		r.Comma = ';'
		rows, err = r.ReadAll()
		if err != nil {
			t.Fatalf("retraits.csv: %v", err)
		}
		if len(rows) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(rows) != 2 || rows[1][len(rows[1])-1] != clientIP {
		t.Fatalf("retraits.csv = %q, want one download from %s", rows, clientIP)
	}
}

// banAcrossNodes: failed logins from one address, alternating between the
// nodes (round robin, one connection each), count as on one node: the
// 30th bans the address, once, on both nodes.
func (c *cluster) banAcrossNodes(t *testing.T) {
	ctx := context.Background()
	const attacker = "127.0.0.50"
	attempt := func(i int) (counted bool) {
		var banner strings.Builder
		cfg := &ssh.ClientConfig{User: fmt.Sprintf("intrus%02d-xt", i), Auth: []ssh.AuthMethod{ssh.Password("Mauvais-Mot-2-Passe")},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 15 * time.Second,
			BannerCallback: func(m string) error { banner.WriteString(m); return nil }}
		nc, err := dialFrom(c.sftpAddr, attacker)
		if err != nil {
			t.Fatal(err)
		}
		if sc, err := sshOver(nc, c.sftpAddr, cfg); err == nil {
			sc.Close()
			t.Fatal("a wrong password was accepted")
		}
		return !strings.Contains(banner.String(), "Trop de tentatives")
	}
	failures := 0
	for i := 0; failures < 29; i++ {
		if attempt(i) {
			failures++
		} else {
			time.Sleep(100 * time.Millisecond) // the address is blocked for at most 50 ms
		}
	}
	if bans, _ := c.db.ListBans(ctx, time.Now()); len(bans) != 0 {
		t.Fatalf("banned after 29 failures: %v", bans)
	}
	for n := 0; failures < 30; n++ {
		if attempt(100 + n) {
			failures++
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	bans, err := c.db.ListBans(ctx, time.Now())
	if err != nil || len(bans) != 1 || bans[0].IP != attacker || bans[0].Failures != 30 {
		t.Fatalf("bans after 30 failures: %v, %v; want %s once, at 30", bans, err, attacker)
	}
	events, _ := c.db.ListAudit(ctx, pigp.AuditFilter{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	banEvents := 0
	for _, e := range events {
		if e.Action == pigp.AuditBan {
			banEvents++
			if e.IP != attacker {
				t.Errorf("ban recorded for %s, want %s", e.IP, attacker)
			}
		}
	}
	if banEvents != 1 {
		t.Fatalf("%d ban events, want 1", banEvents)
	}
	// The failures were spread over both nodes, and both refuse the address.
	failed := regexp.MustCompile(`msg="ssh auth failed".* login=intrus\d+-xt ip=` + regexp.QuoteMeta(attacker) + ` `)
	for _, n := range c.nodes {
		if k := len(failed.FindAllString(n.log.String(), -1)); k == 0 {
			t.Errorf("%s saw none of the failed logins", n.name)
		} else {
			t.Logf("%s saw %d failed logins", n.name, k)
		}
		nc, err := dialFrom(fmt.Sprintf("127.0.0.1:%d", n.sftpPort), attacker)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, _ := bufio.NewReader(nc).ReadString('\n')
		nc.Close()
		if !strings.Contains(line, "adresse temporairement bloquée") {
			t.Errorf("%s let the banned address in: %q", n.name, line)
		}
	}
	// Another address still gets in through the balancer.
	if _, sc, err := c.clusterSFTP("127.0.0.51"); err != nil {
		t.Fatalf("another address after the ban: %v", err)
	} else {
		sc.Close()
	}
}

// hostKey returns the host key fingerprint a node presents.
func (c *cluster) hostKey(t *testing.T, n *clusterNode) string {
	t.Helper()
	var fp string
	cfg := sshConfig("alice-xt", c.alice)
	cfg.HostKeyCallback = func(_ string, _ net.Addr, k ssh.PublicKey) error { fp = ssh.FingerprintSHA256(k); return nil }
	addr := fmt.Sprintf("127.0.0.1:%d", n.sftpPort)
	nc, err := dialFrom(addr, "127.0.0.30")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sshOver(nc, addr, cfg)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	sc.Close()
	return fp
}

// clusterBrowser is an HTTP client with cookies, bound to one source
// address, that does not follow redirects.
type clusterBrowser struct {
	client *http.Client
}

type clusterReply struct {
	status   int
	location string
	body     string
}

func newClusterBrowser(t *testing.T, from string) *clusterBrowser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 15 * time.Second}
	return &clusterBrowser{client: &http.Client{Jar: jar, Timeout: time.Minute,
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *clusterBrowser) do(t *testing.T, req *http.Request) clusterReply {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return clusterReply{resp.StatusCode, resp.Header.Get("Location"), string(body)}
}

func (b *clusterBrowser) get(t *testing.T, u string) clusterReply {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(t, req)
}

func (b *clusterBrowser) post(t *testing.T, u string, form url.Values) clusterReply {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

var clusterCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *clusterBrowser) csrf(t *testing.T, u string) string {
	t.Helper()
	m := clusterCSRF.FindStringSubmatch(b.get(t, u).body)
	if m == nil {
		t.Fatalf("no CSRF token in %s", u)
	}
	return m[1]
}

func (b *clusterBrowser) login(t *testing.T, base, login, password string) {
	t.Helper()
	r := b.post(t, base+"/connexion", url.Values{"csrf": {b.csrf(t, base+"/connexion")}, "identifiant": {login}, "motdepasse": {password}})
	if r.status != http.StatusSeeOther || r.location != "/applications" {
		t.Fatalf("login on %s: %d %q", base, r.status, r.location)
	}
}
