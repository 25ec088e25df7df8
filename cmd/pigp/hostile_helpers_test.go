package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// buildPigp builds the pigp binary into a test directory.
func buildPigp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pigp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// child is a `pigp serve` running in its own process.
type child struct {
	cmd    *exec.Cmd
	pid    int
	sftp   string // address of the SSH listener
	http   string // base URL of the portal
	stderr *syncBuffer
}

// childData prepares a data directory with two organisations and the
// accounts alice-xt (siretA) and bob-xt (siretB); it returns their
// passwords.
func childData(t *testing.T, dataDir string) (alice, bob string) {
	t.Helper()
	run := func(stdin string, args ...string) {
		t.Helper()
		var out syncBuffer
		m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out, Getenv: func(k string) string {
			return map[string]string{"PIGP_DATA_DIR": dataDir, "USER": "operateur-test"}[k]
		}}
		if code := m.Run(context.Background(), args); code != 0 {
			t.Fatalf("pigp %v: %d\n%s", args, code, out.String())
		}
	}
	run("", "org", "add", "--siret", siretA, "--name", "Département du Val-de-Marne")
	run("", "org", "add", "--siret", siretB, "--name", "Ville de Paris")
	alice, bob = pigp.GeneratePassword(16), pigp.GeneratePassword(16)
	run(alice+"\n", "user", "add", "--login", "alice-xt", "--siret", siretA, "--name", "Agent alice", "--email", "a@example.fr", "--password-stdin")
	run(bob+"\n", "user", "add", "--login", "bob-xt", "--siret", siretB, "--name", "Agent bob", "--email", "b@example.fr", "--password-stdin")
	return alice, bob
}

var (
	sftpListening   = regexp.MustCompile(`msg="sftp server listening".* addr=(\S+)`)
	portalListening = regexp.MustCompile(`msg="portal listening[^"]*".* addr=(\S+)`)
)

// startChild runs `pigp serve args...` on dataDir with every listener on
// a free port of 127.0.0.1. With nofile > 0 it runs under `ulimit -n
// nofile` (soft and hard limits).
func startChild(t *testing.T, bin, dataDir string, nofile int, args ...string) *child {
	t.Helper()
	var cmd *exec.Cmd
	if nofile > 0 {
		cmd = exec.Command("bash", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve "$@"`, nofile), bin}, args...)...)
	} else {
		cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	}
	cmd.Env = append(os.Environ(), "PIGP_DATA_DIR="+dataDir, "PIGP_SFTP_LISTEN=127.0.0.1:0",
		"PIGP_HTTP_LISTEN=127.0.0.1:0", "PIGP_LOG_LEVEL=info")
	c := &child{cmd: cmd, stderr: &syncBuffer{}}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.pid = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("pigp serve log:\n%s", c.stderr.String())
		}
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			c.stderr.Write(append(sc.Bytes(), '\n'))
			if !signalled {
				all := c.stderr.String()
				if sftpListening.MatchString(all) && portalListening.MatchString(all) {
					signalled = true
					close(found)
				}
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("pigp serve not listening after 60 s:\n%s", c.stderr.String())
	}
	all := c.stderr.String()
	c.sftp = sftpListening.FindStringSubmatch(all)[1]
	c.http = "http://" + portalListening.FindStringSubmatch(all)[1]
	return c
}

// status returns a field of /proc/PID/status in KiB (VmHWM, VmRSS).
func (c *child) status(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, c.pid)
	return 0
}

// dialFromTo opens an SSH connection to addr from a chosen loopback
// address (all of 127.0.0.0/8 is local on Linux).
func dialFromTo(addr, src string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}
