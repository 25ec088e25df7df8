package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/scheduler"
)

type jobsCommand struct{}

// jobs lists the scheduled jobs with their schedule, last run and next run.
func (jobsCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("jobs")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		last, err := a.DB.LastJobRuns(ctx)
		if err != nil {
			return err
		}
		now := a.Now()
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TÂCHE\tPLANIFICATION\tDERNIÈRE EXÉCUTION\tRÉSULTAT\tPROCHAINE EXÉCUTION")
		for _, j := range a.jobs() {
			next, err := scheduler.Next(j, now)
			if err != nil {
				return err
			}
			lastRun, result := "jamais", "-"
			if r := last[j.Name]; r != nil {
				lastRun = r.StartedAt.In(apa.Paris).Format("2006-01-02 15:04:05") + " (" + r.Node + ")"
				result = "ok " + r.Counts
				if !r.OK {
					result = "échec : " + r.Message
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Name, j.Schedule, lastRun, result, next.In(apa.Paris).Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	})
}

type expireCommand struct{}

// expire runs the expiry jobs once as of a given time and prints the counts.
func (expireCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("expire")
	var cf configFlags
	cf.register(fs, false)
	at := fs.String("at", "", "run as of this time (RFC 3339, or AAAA-MM-JJ[Thh:mm[:ss]] in Europe/Paris); default now")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		now := a.Now()
		if *at != "" {
			t, err := parseAt(*at)
			if err != nil {
				return usagef("--at: %v", err)
			}
			now = t
		}
		s := &scheduler.Scheduler{Store: a.DB, Logger: a.Logger, Node: "cli"}
		for _, j := range a.jobs() {
			if j.Name != jobExpiry && j.Name != jobPasswords && j.Name != jobHousekeeping {
				continue
			}
			counts, err := s.RunJob(ctx, j, now, now)
			if err != nil {
				return fmt.Errorf("%s: %w", j.Name, err)
			}
			fmt.Fprintf(m.Stdout, "%s: %s\n", j.Name, counts)
		}
		return nil
	})
}

func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, apa.Paris); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q not understood (e.g. 2026-12-19T10:00:00+01:00 or 2026-12-19)", strings.TrimSpace(s))
}
