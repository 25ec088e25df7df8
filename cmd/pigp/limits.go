package main

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/exchange"
)

// minFileBudget is the fewest descriptors left to uploads and downloads
// when RLIMIT_NOFILE is too low for the configured reserve.
const minFileBudget = 16

// fileBudget returns how many descriptors uploads and downloads may hold:
// limits.max_open_files, or RLIMIT_NOFILE (nofile; 0 when unknown) minus
// one per SSH connection (max_connections) minus the reserved ones for
// the portal, the database and the listeners. low reports that nofile is
// below that reserve and a quarter of it was taken instead.
func fileBudget(c config.Config, nofile uint64) (budget int, low bool) {
	if c.Limits.MaxOpenFiles > 0 {
		return c.Limits.MaxOpenFiles, false
	}
	if nofile == 0 {
		return 0, false // unknown: no bound
	}
	n := int(min(nofile, 1<<30))
	if b := n - c.MaxConnections - c.Limits.ReservedDescriptors; b >= minFileBudget {
		return b, false
	}
	return max(n/4, minFileBudget), true
}

// applyLimits sets the process-wide limits of a serving process: the
// descriptors (RLIMIT_NOFILE raised to its hard limit, the budget of
// uploads and downloads) and the Go runtime's memory limit.
func (a *App) applyLimits() {
	c := a.Config
	nofile, err := raiseFileLimit()
	if err != nil {
		a.Logger.Warn("cannot raise RLIMIT_NOFILE to its hard limit", "limit", nofile, "error", err)
	}
	budget, low := fileBudget(c, nofile)
	a.Exchange.Limits.OpenFiles = budget
	if low {
		a.Logger.Warn("RLIMIT_NOFILE is below max_connections + limits.reserved_descriptors: raise it (LimitNOFILE=) or lower max_connections",
			"rlimit_nofile", nofile, "max_connections", c.MaxConnections, "reserved", c.Limits.ReservedDescriptors, "files_budget", budget)
	}
	a.Logger.Info("descriptor limits", "rlimit_nofile", nofile, "files_budget", budget)
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimit))
		a.Logger.Info("memory limit set", "bytes", int64(c.MemoryLimit))
	}
}

// idleRelease returns what the SFTP server and the password checks call
// once their work stops: the memory goes back to the system (nil when
// release is false).
func idleRelease(release bool) func() {
	if !release {
		return nil
	}
	return debug.FreeOSMemory
}

// newHashLimiter returns the memory budget of password checks.
func newHashLimiter(c config.Config, a *App) *exchange.HashLimiter {
	return exchange.NewHashLimiter(c.Auth.MaxConcurrentHashes, c.Auth.HashQueue, c.Auth.HashWait.Std(), idleRelease(c.Auth.ReleaseMemory),
		a.Logger.With("component", "auth"))
}

// closeRefusals records the summaries of the refusals still counted.
func (a *App) closeRefusals() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.Exchange.Refusals.Close(ctx)
}
