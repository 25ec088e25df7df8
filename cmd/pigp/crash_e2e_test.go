package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// node is a pigp SFTP node running in its own process.
type node struct {
	cmd   *exec.Cmd
	addr  string
	stdin io.WriteCloser
	done  chan struct{} // closed once the process ended
}

// startNode runs a node on e's data directory and database.
func startNode(t *testing.T, e *env, killAfterCommit bool) *node {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIGP_TEST_NODE=1", "PIGP_DATA_DIR="+e.app.Config.DataDir,
		"PIGP_DATABASE_URL="+e.app.Config.DatabaseURL, "PIGP_SFTP_LISTEN=127.0.0.1:0", "PIGP_HTTP_LISTEN=off")
	cmd.Env = append(cmd.Env, e.nodeEnv...)
	if killAfterCommit {
		cmd.Env = append(cmd.Env, "PIGP_TEST_KILL_AFTER_COMMIT=1")
	}
	cmd.Stderr = testWriter{t}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		cmd.Process.Kill()
		t.Fatalf("node did not start: %q %v", line, err)
	}
	n.addr = strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	go func() { cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	return n
}

func (n *node) dial(t *testing.T, login, password string) *sftp.Client {
	t.Helper()
	conn, err := ssh.Dial("tcp", n.addr, sshConfig(login, password))
	if err != nil {
		t.Fatalf("dial node: %v", err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

// TestKillBetweenCommitAndOK kills a node (SIGKILL) right after a deposit
// is committed and before the client gets OK, while another upload is in
// progress. The restarted node removes the temporary file the crash left,
// and the client's retry of the same file is answered OK with the first
// deposit: one deposit, no second answer.
func TestKillBetweenCommitAndOK(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			n1 := startNode(t, e, true)

			// An upload left half-way on node 1.
			other := n1.dial(t, "bob-xt", e.bob)
			half, err := other.Create("/depot/" + callName(siretB, 1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := half.Write(randomBytes(200 << 10)); err != nil {
				t.Fatal(err)
			}
			var leftover string
			for _, f := range e.tmpFiles() {
				if strings.Contains(f, "_"+strconv.Itoa(n1.cmd.Process.Pid)+"_") {
					leftover = f
				}
			}
			if leftover == "" {
				t.Fatalf("no temporary file of node 1 in %v", e.tmpFiles())
			}

			name, data := callName(siretA, 2), randomBytes(64<<10)
			c := n1.dial(t, "alice-xt", e.alice)
			if err := put(c, name, data); err == nil {
				t.Fatal("the upload was answered although the node was killed before answering")
			}
			select {
			case <-n1.done:
				if st, ok := n1.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || st.Signal() != syscall.SIGKILL {
					t.Fatalf("node 1 ended with %v, want SIGKILL", n1.cmd.ProcessState)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("node 1 still running")
			}
			ds := e.deposits(siretA)
			if len(ds) != 1 || ds[0].SHA256 != sha(data) {
				t.Fatalf("after the kill: %+v, want the committed deposit", ds)
			}
			if !slices.Contains(e.tmpFiles(), leftover) {
				t.Fatalf("the crash leftover %s is not there to clean: %v", leftover, e.tmpFiles())
			}

			// Restart: the leftover goes at once, not a day later.
			n2 := startNode(t, e, false)
			if slices.Contains(e.tmpFiles(), leftover) {
				t.Fatalf("crash leftover %s still in tmp/ after restart: %v", leftover, e.tmpFiles())
			}
			// The client retries the same file: OK, and still one deposit.
			c2 := n2.dial(t, "alice-xt", e.alice)
			if err := put(c2, name, data); err != nil {
				t.Fatalf("retry after the lost OK: %v", err)
			}
			ds = e.deposits(siretA)
			if len(ds) != 1 {
				t.Fatalf("%d deposits after the retry, want 1: %+v", len(ds), ds)
			}
			evs := e.audit(t)
			if countAudit(evs, func(a *pigp.AuditEvent) bool { return a.Action == pigp.AuditUpload && a.Object == name }) != 1 ||
				countAudit(evs, func(a *pigp.AuditEvent) bool {
					return a.Action == pigp.AuditUploadDuplicate && strings.Contains(a.Detail, ds[0].ID)
				}) != 1 {
				t.Fatalf("audit rows of the deposit and its retry missing")
			}
			// A different content under the same name is a new deposit.
			if err := put(c2, name, randomBytes(1000)); err != nil {
				t.Fatal(err)
			}
			if got := len(e.deposits(siretA)); got != 2 {
				t.Fatalf("%d deposits, want 2", got)
			}
			// Processing answers the deposit once.
			if code, out := e.cli(t, "process"); code != 0 {
				t.Fatalf("process: %s", out)
			}
			resps, _ := e.app.DB.ListAvailableResponses(context.Background(), []string{siretA}, time.Now().Add(time.Hour))
			if len(resps) != 2 {
				t.Fatalf("%d answers for 2 deposits", len(resps))
			}
		})
	}
}
