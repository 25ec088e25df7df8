package main

import (
	"context"
	"fmt"
)

type serveCommand struct{}

func (serveCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("serve")
	var cf configFlags
	cf.register(fs, true)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp serve [--config FILE] [--data-dir DIR] [--database-url URL] [--sftp-listen ADDR]")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	logger := newLogger(c, m.Stderr)
	a, err := openApp(ctx, c, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.StartMetrics(); err != nil {
		return err
	}
	if err := a.StartDebug(); err != nil {
		return err
	}
	if err := a.StartSFTP(); err != nil {
		return err
	}
	if err := a.StartWeb(); err != nil {
		return err
	}
	if err := a.StartScheduler(); err != nil {
		return err
	}
	<-ctx.Done()
	// Tell the balancer first, then stop accepting (deferred Close).
	a.Drain(context.Background())
	logger.Info("shutting down", "timeout", c.ShutdownTimeout.Std())
	return nil
}
