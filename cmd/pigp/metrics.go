package main

import (
	"context"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/metrics"
)

// StartMetrics serves the Prometheus metrics on metrics_listen (nothing
// when it is empty) and connects the counters to the exchange, the
// processor and, once they start, the SFTP server and the scheduler. Call
// it before the other listeners, so that no event goes uncounted.
func (a *App) StartMetrics() error {
	if a.Config.MetricsListen == "" || a.Config.MetricsListen == "off" {
		return nil
	}
	var jobs []string
	for _, j := range a.jobs() {
		jobs = append(jobs, j.Name)
	}
	m := metrics.New(metrics.Options{
		Source: a.DB, Jobs: jobs, ExpiringDays: a.Config.PasswordReminderDays, StoreDir: a.Spool.Dir(),
		Version: pigp.Version, Commit: pigp.BuildCommit(), Now: a.DB.Now,
		Logger: a.Logger.With("component", "metrics"),
	})
	srv, err := metrics.Listen(a.Config.MetricsListen, m, a.Logger.With("component", "metrics"))
	if err != nil {
		return err
	}
	a.Metrics, a.MetricsServer = m, srv
	a.Exchange.Metrics = m
	a.Process.Metrics = m
	return nil
}

// closeMetrics stops the metrics listener.
func (a *App) closeMetrics(ctx context.Context) error {
	if a.MetricsServer == nil {
		return nil
	}
	err := a.MetricsServer.Close(ctx)
	a.MetricsServer = nil
	return err
}
