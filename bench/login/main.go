// Command login measures authentication against `pigp serve` processes:
// password and public-key logins per second with the server's CPU time per
// login, comparing two builds in interleaved rounds; then a flood of 200
// concurrent wrong-password logins from 20 loopback addresses, with the
// server's peak resident memory (VmHWM) and its resident memory in the
// seconds after the flood, for several memory settings.
//
//	go run ./bench/login -before /tmp/pigp-before -after /tmp/pigp-after
//
// bench/login.sh builds the two binaries (before: the commit preceding issue
// 11; after: the working tree) and writes the results into
// bench/RESULTS.md. Each round starts both servers afresh on a new SQLite
// database; a login is a whole SSH connection (key exchange, one
// authentication, close), CONCURRENCY at a time.
package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

const siret = "22940028800010"

func main() {
	before := flag.String("before", "", "pigp binary before the change")
	after := flag.String("after", "", "pigp binary after the change")
	beforeLabel := flag.String("before-label", "before", "name of the before build")
	afterLabel := flag.String("after-label", "after", "name of the after build")
	rounds := flag.Int("rounds", 5, "interleaved rounds of the throughput comparison")
	passwordLogins := flag.Int("password-logins", 60, "password logins per round and build")
	keyLogins := flag.Int("key-logins", 200, "key logins per round and build")
	concurrency := flag.Int("concurrency", 4, "logins at once")
	floodN := flag.Int("flood", 200, "wrong-password logins of the flood")
	floodAddrs := flag.Int("flood-addresses", 20, "source addresses of the flood (127.0.3.x)")
	after1 := flag.Duration("observe", 30*time.Second, "how long resident memory is sampled after the flood")
	skipThroughput := flag.Bool("skip-throughput", false, "only the flood")
	skipFlood := flag.Bool("skip-flood", false, "only the throughput")
	flag.Parse()
	if *before == "" || *after == "" {
		log.Fatal("-before and -after are required")
	}
	bins := []build{{*beforeLabel, *before}, {*afterLabel, *after}}
	fmt.Printf("Load average at the start: %s (%d CPUs, %s).\n\n", loadavg(), runtime.NumCPU(), cpuModel())
	if !*skipThroughput {
		throughput(bins, *rounds, *passwordLogins, *keyLogins, *concurrency)
	}
	if !*skipFlood {
		flood(bins, *floodN, *floodAddrs, *after1)
	}
	fmt.Printf("Load average at the end: %s.\n", loadavg())
}

type build struct{ label, bin string }

// --- server processes ---

type server struct {
	cmd     *exec.Cmd
	pid     int
	addr    string
	dir     string
	stderr  *lockedBuffer
	alice   string
	key     ssh.Signer
	clkTick float64
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listening = regexp.MustCompile(`msg="sftp server listening".* addr=(\S+)`)

// start prepares a data directory with one account (password and key) and
// starts `pigp serve` on it; config (may be "") is a YAML file, env extra
// variables.
func start(bin, config string, env ...string) *server {
	dir, err := os.MkdirTemp("", "pigp-bench-login-")
	check(err)
	s := &server{dir: dir, stderr: &lockedBuffer{}, alice: pigp.GeneratePassword(16), clkTick: clkTck()}
	cli := func(stdin string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "PIGP_DATA_DIR="+dir, "PIGP_LOG_LEVEL=warn")
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("pigp %v: %v\n%s", args, err, out)
		}
	}
	cli("", "org", "add", "--siret", siret, "--name", "Département du Val-de-Marne")
	cli(s.alice+"\n", "user", "add", "--login", "alice-xt", "--siret", siret, "--name", "Agent alice",
		"--email", "a@example.fr", "--password-stdin")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	check(err)
	s.key, err = ssh.NewSignerFromKey(priv)
	check(err)
	sshPub, err := ssh.NewPublicKey(pub)
	check(err)
	keyFile := filepath.Join(dir, "alice.pub")
	check(os.WriteFile(keyFile, ssh.MarshalAuthorizedKey(sshPub), 0o600))
	cli("", "user", "key", "add", "--login", "alice-xt", "--file", keyFile)

	args := []string{"serve"}
	if config != "" {
		args = append(args, "--config", config)
	}
	s.cmd = exec.Command(bin, args...)
	// Info level for the listening line; the info lines after it are dropped.
	s.cmd.Env = append(os.Environ(), "PIGP_DATA_DIR="+dir, "PIGP_SFTP_LISTEN=127.0.0.1:0", "PIGP_HTTP_LISTEN=127.0.0.1:0",
		"PIGP_LOG_LEVEL=info")
	s.cmd.Env = append(s.cmd.Env, env...)
	pipe, err := s.cmd.StderrPipe()
	check(err)
	check(s.cmd.Start())
	s.pid = s.cmd.Process.Pid
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "level=INFO") && sent {
				continue // keep the log small: warnings and errors only
			}
			s.stderr.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				sent = true
				found <- m[1]
			}
		}
	}()
	select {
	case s.addr = <-found:
	case <-time.After(60 * time.Second):
		log.Fatalf("%s serve not listening:\n%s", bin, s.stderr.String())
	}
	return s
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// cpu returns the server's user+system CPU time.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	check(err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((utime + stime) / s.clkTick * float64(time.Second))
}

// status returns a field of /proc/PID/status in MiB.
func (s *server) status(field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n / 1024
		}
	}
	return 0
}

func dial(addr, src string, cfg *ssh.ClientConfig) error {
	d := net.Dialer{Timeout: 60 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

func passwordConfig(login, password string) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: login, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Minute}
}

// --- throughput ---

type rate struct {
	perSecond float64
	cpuPer    time.Duration
}

// logins runs n logins, c at a time, and returns the rate and CPU per login.
func (s *server) logins(n, c int, cfg *ssh.ClientConfig) rate {
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0, t0 := s.cpu(), time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := dial(s.addr, "", cfg); err != nil {
					log.Fatalf("login: %v\n%s", err, s.stderr.String())
				}
			}
		}()
	}
	wg.Wait()
	el, cpu := time.Since(t0), s.cpu()-cpu0
	return rate{float64(n) / el.Seconds(), cpu / time.Duration(n)}
}

func throughput(bins []build, rounds, pw, key, c int) {
	type result struct{ password, key rate }
	res := make([][]result, len(bins))
	for r := range rounds {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			s := start(bins[i].bin, "")
			time.Sleep(time.Second) // start-up work settles
			keyCfg := &ssh.ClientConfig{User: "alice-xt", Auth: []ssh.AuthMethod{ssh.PublicKeys(s.key)},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Minute}
			s.logins(4, 2, passwordConfig("alice-xt", s.alice)) // warm up
			res[i] = append(res[i], result{
				password: s.logins(pw, c, passwordConfig("alice-xt", s.alice)),
				key:      s.logins(key, c, keyCfg),
			})
			s.stop()
		}
		fmt.Fprintf(os.Stderr, "round %d/%d: %s %.1f/%.1f logins/s, %s %.1f/%.1f logins/s (password/key)\n", r+1, rounds,
			bins[0].label, res[0][r].password.perSecond, res[0][r].key.perSecond,
			bins[1].label, res[1][r].password.perSecond, res[1][r].key.perSecond)
	}
	fmt.Printf("### Login throughput\n\n%d interleaved rounds (the build going first alternates); in each, a fresh `pigp serve` "+
		"(SQLite) per build, %d password logins then %d key logins (ed25519), %d at a time, each a whole SSH connection "+
		"(key exchange, one authentication, close). Medians over the rounds; the ratio is the median of the per-round "+
		"ratios (min–max). CPU is the server process's user+system time per login.\n\n", rounds, pw, key, c)
	fmt.Printf("| login | %s logins/s | %s logins/s | %s / %s | server CPU ms per login, %s | %s |\n|---|---:|---:|---:|---:|---:|\n",
		bins[0].label, bins[1].label, bins[1].label, bins[0].label, bins[0].label, bins[1].label)
	for _, kind := range []string{"password", "key"} {
		get := func(r result) rate {
			if kind == "key" {
				return r.key
			}
			return r.password
		}
		var a, b, ratios, ca, cb []float64
		for r := range rounds {
			ra, rb := get(res[0][r]), get(res[1][r])
			a, b = append(a, ra.perSecond), append(b, rb.perSecond)
			ca, cb = append(ca, ms(ra.cpuPer)), append(cb, ms(rb.cpuPer))
			ratios = append(ratios, rb.perSecond/ra.perSecond)
		}
		fmt.Printf("| %s | %.1f | %.1f | **%.2f** (%.2f–%.2f) | %.1f | %.1f |\n", kind, median(a), median(b),
			median(ratios), minOf(ratios), maxOf(ratios), median(ca), median(cb))
	}
	fmt.Println()
	fmt.Println("<details><summary>Every round (logins/s password, key; CPU ms per login password, key)</summary>")
	fmt.Println()
	fmt.Println("| round | build | password/s | key/s | CPU ms password | CPU ms key |\n|---:|---|---:|---:|---:|---:|")
	for r := range rounds {
		for i := range bins {
			x := res[i][r]
			fmt.Printf("| %d | %s | %.1f | %.1f | %.1f | %.1f |\n", r+1, bins[i].label, x.password.perSecond, x.key.perSecond,
				ms(x.password.cpuPer), ms(x.key.cpuPer))
		}
	}
	fmt.Println("\n</details>")
	fmt.Println()
}

// --- flood ---

type variant struct {
	name   string
	b      build
	config string // YAML
	env    []string
}

func flood(bins []build, n, addrs int, observe time.Duration) {
	dir, err := os.MkdirTemp("", "pigp-bench-flood-")
	check(err)
	defer os.RemoveAll(dir)
	noRelease := filepath.Join(dir, "no-release.yaml")
	check(os.WriteFile(noRelease, []byte("auth:\n  release_memory: false\n"), 0o600))
	variants := []variant{
		{name: bins[0].label + ": no limit", b: bins[0]},
		{name: bins[1].label + ": memory released after the flood (default)", b: bins[1]},
		{name: bins[1].label + ": `auth.release_memory: false`", b: bins[1], config: noRelease},
		{name: bins[1].label + ": `auth.release_memory: false`, GOMEMLIMIT=128MiB", b: bins[1], config: noRelease,
			env: []string{"GOMEMLIMIT=128MiB"}},
	}
	var samples []time.Duration
	for _, d := range []time.Duration{time.Second, 3 * time.Second, 10 * time.Second, observe} {
		if d <= observe && (len(samples) == 0 || d > samples[len(samples)-1]) {
			samples = append(samples, d)
		}
	}
	fmt.Printf("### Flood: %d concurrent wrong-password logins from %d addresses\n\n"+
		"Half for the known login, half for unknown ones, from 127.0.3.1–%d, all at once, default settings otherwise "+
		"(the throttle blocks each address after 10 failures); the owner logs in with the right password from "+
		"another address 50 ms after the flood starts. Peak RSS is the server's VmHWM; RSS is VmRSS the given time "+
		"after the last attempt ended.\n\n", n, addrs, addrs)
	fmt.Printf("| build, memory setting | refused | owner's login | peak RSS MiB | flood s | server CPU s |")
	for _, d := range samples {
		fmt.Printf(" RSS +%v MiB |", d)
	}
	fmt.Printf("\n|---|---:|---|---:|---:|---:|%s\n", strings.Repeat("---:|", len(samples)))
	for _, v := range variants {
		s := start(v.b.bin, v.config, v.env...)
		time.Sleep(2 * time.Second)
		base := s.status("VmHWM")
		var refused atomic.Int32
		var wg sync.WaitGroup
		startFlood := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				login := "alice-xt"
				if i%2 == 1 {
					login = fmt.Sprintf("nobody%d-xt", i)
				}
				<-startFlood
				if dial(s.addr, fmt.Sprintf("127.0.3.%d", 1+i%addrs), passwordConfig(login, "Wrong-Password-1!")) != nil {
					refused.Add(1)
				}
			}()
		}
		cpu0, t0 := s.cpu(), time.Now()
		close(startFlood)
		time.Sleep(50 * time.Millisecond)
		ht := time.Now()
		herr := dial(s.addr, "127.0.4.1", passwordConfig("alice-xt", s.alice))
		honest := fmt.Sprintf("in %.1f s", time.Since(ht).Seconds())
		if herr != nil {
			honest = "refused"
		}
		wg.Wait()
		dur, cpu := time.Since(t0), s.cpu()-cpu0
		end := time.Now()
		peak := s.status("VmHWM")
		var rss []string
		for _, d := range samples {
			time.Sleep(time.Until(end.Add(d)))
			rss = append(rss, fmt.Sprintf("%.0f", s.status("VmRSS")))
		}
		fmt.Printf("| %s | %d/%d | %s | **%.0f** (%.0f before) | %.1f | %.1f | %s |\n", v.name, refused.Load(), n, honest,
			peak, base, dur.Seconds(), cpu.Seconds(), strings.Join(rss, " | "))
		s.stop()
	}
	fmt.Println()
}

// --- helpers ---

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func clkTck() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
