// Package scheduler runs pigp's periodic jobs (processing, expiry,
// reminders, housekeeping) with gocron. When several nodes share one
// database, each tick of a job runs on one node only: the nodes fire on the
// same cron boundaries and the first to claim the tick in the database
// runs it. Jobs are idempotent besides, so an overlap would be harmless.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"

	"github.com/pigp/pigp"
)

// Counts are what a run did, by name (expired, deleted, failed…).
type Counts map[string]int

// String writes counts as "a=1 b=2" in name order.
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return strings.Join(parts, " ")
}

// Job is a periodic task. Run receives the scheduler's clock time.
type Job struct {
	Name     string
	Schedule string // cron expression with seconds, e.g. "0 * * * * *"
	Run      func(ctx context.Context, now time.Time) (Counts, error)
}

// Store records tick claims and runs.
type Store interface {
	ClaimTick(ctx context.Context, job string, tick time.Time, node string) (bool, error)
	RecordJobRun(ctx context.Context, r *pigp.JobRun) error
}

// Metrics counts job runs by job name and result.
type Metrics interface {
	JobRun(job string, ok bool)
}

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	Jobs   []Job
	Store  Store
	Clock  clockwork.Clock
	Logger *slog.Logger
	Node   string // this node's name in tick claims and run records
	// Metrics, if set, counts the runs of this node.
	Metrics Metrics
	// StopTimeout is how long Shutdown lets the running jobs finish
	// before it cancels their context (0: DefaultStopTimeout).
	StopTimeout time.Duration

	gs     gocron.Scheduler
	ctx    context.Context // the context of the scheduled runs
	cancel context.CancelFunc
}

// DefaultStopTimeout is the StopTimeout of a Scheduler that sets none.
const DefaultStopTimeout = 30 * time.Second

// cancelGrace is how long Shutdown still waits for the jobs it cancelled:
// they stop at their next check of the context.
const cancelGrace = 5 * time.Second

// ParseSchedule checks a cron expression with seconds and returns it.
func ParseSchedule(expr string) (cron.Schedule, error) {
	return cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor).Parse(expr)
}

// Start schedules every job.
func (s *Scheduler) Start() error {
	if s.Clock == nil {
		s.Clock = clockwork.NewRealClock()
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Node == "" {
		host, _ := os.Hostname()
		s.Node = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	gs, err := gocron.NewScheduler(gocron.WithClock(s.Clock), gocron.WithLocation(time.UTC),
		gocron.WithStopTimeout(s.StopTimeout+cancelGrace))
	if err != nil {
		return fmt.Errorf("create scheduler: %w", err)
	}
	for _, j := range s.Jobs {
		if _, err := ParseSchedule(j.Schedule); err != nil {
			return fmt.Errorf("job %s: bad schedule %q: %w", j.Name, j.Schedule, err)
		}
		j := j
		_, err := gs.NewJob(gocron.CronJob(j.Schedule, true),
			gocron.NewTask(func() { s.tick(j) }),
			gocron.WithName(j.Name),
			gocron.WithSingletonMode(gocron.LimitModeReschedule))
		if err != nil {
			return fmt.Errorf("schedule job %s: %w", j.Name, err)
		}
	}
	s.gs = gs
	s.ctx, s.cancel = context.WithCancel(context.Background())
	gs.Start()
	return nil
}

// Shutdown stops scheduling and lets the running jobs finish for
// StopTimeout; the jobs still running then have their context cancelled
// and are waited for a few seconds more.
func (s *Scheduler) Shutdown() error {
	if s.gs == nil {
		return nil
	}
	t := time.AfterFunc(s.StopTimeout, s.cancel)
	defer t.Stop()
	defer s.cancel()
	return s.gs.Shutdown()
}

// tick runs job for the current tick if this node claims it.
func (s *Scheduler) tick(j Job) {
	now := s.Clock.Now()
	tick := now.Round(time.Second)
	ctx := s.ctx
	if s.Store != nil {
		ok, err := s.Store.ClaimTick(ctx, j.Name, tick, s.Node)
		if err != nil {
			s.Logger.Error("claim job tick", "job", j.Name, "error", err)
			return
		}
		if !ok {
			s.Logger.Debug("tick run by another node", "job", j.Name, "tick", tick)
			return
		}
	}
	s.RunJob(ctx, j, now, tick)
}

// RunJob runs j once as of now, logs and records the run, and returns its counts.
func (s *Scheduler) RunJob(ctx context.Context, j Job, now, tick time.Time) (Counts, error) {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	counts, err := func() (c Counts, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return j.Run(ctx, now)
	}()
	run := &pigp.JobRun{Job: j.Name, Node: s.Node, Tick: tick, StartedAt: started, FinishedAt: time.Now(),
		OK: err == nil, Counts: counts.String()}
	if err != nil {
		run.Message = err.Error()
		s.Logger.Error("job failed", "job", j.Name, "counts", run.Counts, "error", err, "elapsed", run.FinishedAt.Sub(started))
	} else {
		s.Logger.Info("job run", "job", j.Name, "counts", run.Counts, "elapsed", run.FinishedAt.Sub(started))
	}
	if s.Metrics != nil {
		s.Metrics.JobRun(j.Name, err == nil)
	}
	if s.Store != nil {
		if rerr := s.Store.RecordJobRun(context.WithoutCancel(ctx), run); rerr != nil {
			s.Logger.Error("record job run", "job", j.Name, "error", rerr)
			err = errors.Join(err, rerr)
		}
	}
	return counts, err
}

// Next returns the next time job's schedule fires after t.
func Next(j Job, t time.Time) (time.Time, error) {
	sch, err := ParseSchedule(j.Schedule)
	if err != nil {
		return time.Time{}, err
	}
	return sch.Next(t), nil
}
