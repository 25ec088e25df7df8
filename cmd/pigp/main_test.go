package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/config"
)

// TestMain turns the test binary into a pigp process for the tests that
// need a separate one (a node to kill, a command run by another pid):
//
//	PIGP_TEST_MAIN="expire --at 2030-01-01"  runs that command
//	PIGP_TEST_NODE=1                          runs an SFTP node: it prints
//	    "ADDR host:port" once listening and stops when its standard input
//	    closes; with PIGP_TEST_KILL_AFTER_COMMIT=1 it kills itself (SIGKILL)
//	    right after its first deposit is committed, before the client is
//	    answered; with PIGP_TEST_KILL_AFTER_PUT=1, right after the content
//	    of its first deposit is put into the store, before its row is
//	    committed.
//
// Settings come from the PIGP_* environment, as for pigp itself.
func TestMain(m *testing.M) {
	if args := os.Getenv("PIGP_TEST_MAIN"); args != "" {
		main := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
		os.Exit(main.Run(context.Background(), strings.Fields(args)))
	}
	if os.Getenv("PIGP_TEST_NODE") != "" {
		os.Exit(testNode())
	}
	os.Exit(m.Run())
}

func testNode() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := config.Load("", os.Getenv)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := openApp(ctx, c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer a.Close()
	if os.Getenv("PIGP_TEST_KILL_AFTER_COMMIT") == "1" {
		a.Exchange.OnDeposit = func(d *pigp.Deposit) {
			fmt.Fprintln(os.Stderr, "deposit committed, killing the node before the answer:", d.ID)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	if os.Getenv("PIGP_TEST_KILL_AFTER_PUT") == "1" {
		a.Exchange.Blobs = killAfterPut{a.Blobs}
	}
	if err := a.StartSFTP(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", a.SFTP.ListenAddr())
	done := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return 0
}

// killAfterPut is a content store that kills the process (SIGKILL) once a
// deposit's content is stored, before the caller commits its row.
type killAfterPut struct{ blob.Backend }

func (k killAfterPut) Put(ctx context.Context, key string, src *os.File, sum string) error {
	err := k.Backend.Put(ctx, key, src, sum)
	if err == nil && strings.HasPrefix(key, blob.KindDeposit+"/") {
		fmt.Fprintln(os.Stderr, "deposit content stored, killing the node before the commit:", key)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return err
}

// openRaw opens e's database directly, as its administrator would.
func openRaw(t *testing.T, e *env) *sql.DB {
	t.Helper()
	dialect, dsn := e.dialect()
	driver := "pgx"
	if dialect == "sqlite" {
		driver, dsn = "sqlite", dsn+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
