package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/scheduler"
	"github.com/pigp/pigp/store"
)

// TestMain turns the test binary into a scheduler node when the multi-node
// test starts it with PIGP_TEST_NODE set.
func TestMain(m *testing.M) {
	if node := os.Getenv("PIGP_TEST_NODE"); node != "" {
		os.Exit(runNode(node, os.Getenv("PIGP_TEST_DSN")))
	}
	os.Exit(m.Run())
}

// runNode runs a scheduler with a job every second until SIGTERM.
func runNode(node, dsn string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	db, err := store.Open(ctx, store.Postgres, dsn, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	s := &scheduler.Scheduler{Store: db, Node: node, Jobs: []scheduler.Job{{
		Name: "tick", Schedule: "* * * * * *",
		Run: func(context.Context, time.Time) (scheduler.Counts, error) {
			time.Sleep(50 * time.Millisecond) // some work
			return scheduler.Counts{"n": 1}, nil
		},
	}}}
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	<-ctx.Done()
	s.Shutdown()
	return 0
}

// TestOneRunPerTickAcrossNodes starts three schedulers in separate processes
// on one PostgreSQL, with a job every second: the job runs once per tick,
// not three times, and goes on when a node is killed.
func TestOneRunPerTickAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test takes about 8 seconds")
	}
	dsn := testutil.NewPostgresDB(t)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Postgres, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var nodes []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("PIGP_TEST_NODE=node-%d", i), "PIGP_TEST_DSN="+dsn)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	time.Sleep(4500 * time.Millisecond)
	// Kill the node that ran the latest tick, as if it crashed.
	runs, err := db.ListJobRuns(ctx, "tick")
	if err != nil || len(runs) == 0 {
		t.Fatalf("no run after 4.5 s: %v", err)
	}
	victim := runs[len(runs)-1].Node
	killedAt := time.Now()
	for i, cmd := range nodes {
		if fmt.Sprintf("node-%d", i) == victim {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	time.Sleep(3500 * time.Millisecond)
	for _, cmd := range nodes {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range nodes {
		cmd.Wait()
	}

	runs, err = db.ListJobRuns(ctx, "tick")
	if err != nil {
		t.Fatal(err)
	}
	ticks := map[time.Time]int{}
	var first, last time.Time
	after := 0
	byNode := map[string]int{}
	for _, r := range runs {
		ticks[r.Tick]++
		byNode[r.Node]++
		if first.IsZero() || r.Tick.Before(first) {
			first = r.Tick
		}
		if r.Tick.After(last) {
			last = r.Tick
		}
		if r.Tick.After(killedAt.Add(time.Second)) {
			after++
			if r.Node == victim {
				t.Errorf("killed node %s ran tick %v", victim, r.Tick)
			}
		}
	}
	for tick, n := range ticks {
		if n != 1 {
			t.Errorf("tick %v ran %d times", tick, n)
		}
	}
	span := int(last.Sub(first)/time.Second) + 1
	t.Logf("%d runs over %d ticks, by node %v; %d after the kill", len(runs), span, byNode, after)
	if len(runs) != len(ticks) {
		t.Fatalf("%d runs for %d distinct ticks", len(runs), len(ticks))
	}
	if len(ticks) < span-1 {
		t.Fatalf("%d ticks run out of %d seconds: the job stalled", len(ticks), span)
	}
	if after < 2 {
		t.Fatalf("only %d runs after the node was killed", after)
	}
}

func TestCounts(t *testing.T) {
	if got := (scheduler.Counts{"b": 2, "a": 1}).String(); got != "a=1 b=2" {
		t.Fatalf("Counts.String() = %q", got)
	}
	j := scheduler.Job{Name: "x", Schedule: "0 */5 * * * *"}
	next, err := scheduler.Next(j, time.Date(2026, 1, 1, 10, 2, 0, 0, time.UTC))
	if err != nil || !next.Equal(time.Date(2026, 1, 1, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("Next = %v, %v", next, err)
	}
	if _, err := scheduler.ParseSchedule("* * *"); err == nil {
		t.Fatal("bad schedule accepted")
	}
}

// TestShutdownWaitsThenCancels: Shutdown lets a running job finish within
// StopTimeout, its context intact; a job still running at StopTimeout has
// its context cancelled, and Shutdown returns once it stopped.
func TestShutdownWaitsThenCancels(t *testing.T) {
	run := func(t *testing.T, timeout time.Duration, release <-chan struct{}, stopping func()) error {
		t.Helper()
		started := make(chan struct{}, 1)
		ended := make(chan error, 1)
		s := &scheduler.Scheduler{StopTimeout: timeout, Jobs: []scheduler.Job{{
			Name: "long", Schedule: "* * * * * *",
			Run: func(ctx context.Context, _ time.Time) (scheduler.Counts, error) {
				select {
				case started <- struct{}{}:
				default:
					return nil, nil // one long run is enough
				}
				select {
				case <-release:
				case <-ctx.Done():
				}
				ended <- ctx.Err()
				return nil, nil
			},
		}}}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("the job did not start")
		}
		stopped := make(chan error, 1)
		go func() { stopped <- s.Shutdown() }()
		stopping()
		var jobErr error
		select {
		case jobErr = <-ended:
		case <-time.After(time.Minute):
			t.Fatal("the job was neither let finish nor cancelled")
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		return jobErr
	}
	t.Run("FinishesWithinTimeout", func(t *testing.T) {
		release := make(chan struct{})
		stopping := func() {
			time.Sleep(100 * time.Millisecond) // Shutdown is waiting
			close(release)
		}
		if err := run(t, time.Hour, release, stopping); err != nil {
			t.Fatalf("the job's context was cancelled (%v) within StopTimeout", err)
		}
	})
	t.Run("CancelledAtTimeout", func(t *testing.T) {
		if err := run(t, 100*time.Millisecond, nil, func() {}); err != context.Canceled {
			t.Fatalf("job context: %v, want context.Canceled after StopTimeout", err)
		}
	})
}
