package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/config"
)

// TestConcurrentUploadsOneAddress: with the default settings, a
// département's batch tool running 50 transfers at once from one address,
// each on its own connection, has every one accepted. The 50 connections
// are all open before the first upload starts.
func TestConcurrentUploadsOneAddress(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	const n = 50
	cfg := &ssh.ClientConfig{User: "alice-xt", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.aliceKey)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second}
	clients := make([]*sftp.Client, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := ssh.Dial("tcp", e.addr, cfg)
			if err != nil {
				errs[i] = fmt.Errorf("connection %d: %w", i, err)
				return
			}
			c, err := sftp.NewClient(conn)
			if err != nil {
				conn.Close()
				errs[i] = fmt.Errorf("sftp session %d: %w", i, err)
				return
			}
			clients[i] = c
			t.Cleanup(func() { c.Close(); conn.Close() })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	data := randomBytes(256 << 10)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.Create("/depot/" + callName(siretA, 1400+i))
			if err == nil {
				_, err = f.ReadFrom(bytes.NewReader(data))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	got := 0
	for _, d := range e.deposits(siretA) {
		if d.SHA256 == sha(data) {
			got++
		}
	}
	if got != n {
		t.Fatalf("%d deposits recorded, want %d", got, n)
	}
}

// TestIdleSessionMemory: an idle SFTP session (logged in, subsystem
// started, nothing transferred) costs the server at most 1.5 MiB of heap
// and stacks. The clients are OpenSSH sftp processes, so that only the
// server's memory is in this process.
func TestIdleSessionMemory(t *testing.T) {
	needTool(t, "sftp")
	e := startEnv(t, "sqlite", nil)
	inuse := func() uint64 {
		var ms runtime.MemStats
		for range 2 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	// One session first: the code paths' one-time allocations are not a
	// session's.
	if out, err := e.sftpBatch("alice-xt", "", "pwd\n", t.TempDir()); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	base := inuse()

	const n = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdins []io.WriteCloser
	var cmds []*exec.Cmd
	var outs []*syncBuffer
	for i := range n {
		args := append(e.opensshArgs(), "-oIdentitiesOnly=yes", "-oPasswordAuthentication=no", "-oBatchMode=yes",
			"-i", e.keyFile, "-P", e.port, "-b", "-", "alice-xt@"+e.host)
		cmd := exec.CommandContext(ctx, "sftp", args...)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		outs = append(outs, out)
		if err := cmd.Start(); err != nil {
			t.Fatalf("sftp %d: %v", i, err)
		}
		stdins = append(stdins, in)
		cmds = append(cmds, cmd)
	}
	defer func() {
		for i, in := range stdins {
			in.Close()
			cmds[i].Wait()
		}
	}()
	// Each client proves its session is up by answering a pwd.
	for i, in := range stdins {
		if _, err := io.WriteString(in, "pwd\n"); err != nil {
			t.Fatalf("sftp %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for i, out := range outs {
		for !strings.Contains(out.String(), "Remote working directory: /") {
			if time.Now().After(deadline) {
				t.Fatalf("sftp %d has no session after 90 s: %s", i, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	per := (float64(inuse()) - float64(base)) / n
	t.Logf("heap+stacks per idle session: %.0f KiB (%d sessions)", per/1024, n)
	if per > 1.5*(1<<20) {
		t.Fatalf("an idle session costs %.2f MiB, more than 1.5 MiB", per/(1<<20))
	}
}

// TestDebugListener: with debug_listen set, pprof answers on its own
// loopback listener (a heap profile, a goroutine dump); without it,
// nothing listens.
func TestDebugListener(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) { c.DebugListen = "127.0.0.1:0" })
	if err := e.app.StartDebug(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + e.app.DebugAddr().String()
	for path, want := range map[string]string{
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/":                  "Types of profiles available",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, %.200q; want %q", path, resp.StatusCode, b, want)
		}
	}
	off := startEnv(t, "sqlite", nil)
	if err := off.app.StartDebug(); err != nil || off.app.DebugAddr() != nil {
		t.Fatalf("debug listener without debug_listen: %v, %v", off.app.DebugAddr(), err)
	}
}
