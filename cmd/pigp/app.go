package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/directory"
	"github.com/pigp/pigp/docs"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/lifecycle"
	"github.com/pigp/pigp/metrics"
	"github.com/pigp/pigp/places"
	"github.com/pigp/pigp/processing"
	"github.com/pigp/pigp/scheduler"
	"github.com/pigp/pigp/server"
	"github.com/pigp/pigp/store"
	"github.com/pigp/pigp/vfs"
	"github.com/pigp/pigp/web"
)

// App is the wired program: configuration, database, content store,
// exchange service and, when serving, the SFTP server.
type App struct {
	Config config.Config
	// Now is the program's one clock (UTC): the database's records, the
	// exchange, the guard, processing, the portal and SFTP all read it.
	Now    pigp.Clock
	Logger *slog.Logger
	DB     *store.DB
	// Blobs holds the contents (storage.kind: the filesystem store or an
	// S3 bucket); Spool is the local directory where uploads and answers
	// are written before they are put there (DATA_DIR/store, which is
	// also the filesystem store).
	Blobs    blob.Backend
	Spool    *blob.Store
	Exchange *exchange.Service
	SFTP     *server.Server
	Web      *web.Server
	Places   *places.Table
	Process  *processing.Processor
	Life     *lifecycle.Lifecycle
	Jobs     *scheduler.Scheduler
	// Guard throttles failed logins, for SSH and the portal alike.
	Guard *exchange.Guard
	// Metrics and MetricsServer are set by StartMetrics (nil: no metrics).
	Metrics       *metrics.Metrics
	MetricsServer *metrics.Server
	// debug serves pprof on debug_listen (nil: off).
	debug *debugServer
	// Directory authenticates internal agents (nil: no ldap.url, every
	// login is local).
	Directory *directory.Client

	// op is the audit row of the operator command being run (withApp),
	// nil for other commands; opUsed says a state change recorded it.
	op     *pigp.AuditEvent
	opUsed bool
}

// configFlags registers --config and the settings that can be given as flags.
type configFlags struct {
	path       string
	dataDir    string
	database   string
	sftpListen string
}

func (cf *configFlags) register(fs *flag.FlagSet, listen bool) {
	fs.StringVar(&cf.path, "config", "", "YAML configuration file")
	fs.StringVar(&cf.dataDir, "data-dir", "", "data directory (env PIGP_DATA_DIR, default ./data)")
	fs.StringVar(&cf.database, "database-url", "", "database URL (env PIGP_DATABASE_URL; default SQLite in the data directory)")
	if listen {
		fs.StringVar(&cf.sftpListen, "sftp-listen", "", "SFTP listen address (env PIGP_SFTP_LISTEN, default :2222)")
	}
}

// load builds the configuration: defaults, file, environment, then flags.
func (cf *configFlags) load(m *Main) (config.Config, error) {
	c, err := config.Load(cf.path, m.Getenv)
	if err != nil {
		return c, err
	}
	if cf.dataDir != "" {
		c.DataDir = cf.dataDir
	}
	if cf.database != "" {
		c.DatabaseURL = cf.database
	}
	if cf.sftpListen != "" {
		c.SFTPListen = cf.sftpListen
	}
	return c, c.Validate()
}

func newLogger(c config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		// Times in UTC whatever the machine's zone: one format for shippers.
		if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
			a.Value = slog.TimeValue(a.Value.Time().UTC())
		}
		return a
	}}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openApp opens the database (applying pending migrations), the content
// store and the exchange service.
func openApp(ctx context.Context, c config.Config, logger *slog.Logger) (*App, error) {
	a := &App{Config: c, Logger: logger, Now: func() time.Time { return time.Now().UTC() }}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	dialect, dsn := c.Database()
	db, err := store.Open(ctx, dialect, dsn, logger)
	if err != nil {
		return nil, err
	}
	db.Now = a.Now
	a.DB = db
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if len(applied) > 0 {
		logger.Info("database migrated", "applied", applied, "dialect", dialect)
	}
	if err := a.openAudit(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a.Spool, err = blob.Open(filepath.Join(c.DataDir, "store"))
	if err != nil {
		db.Close()
		return nil, err
	}
	if a.Blobs, err = openBackend(ctx, c, a.Spool, logger); err != nil {
		db.Close()
		return nil, err
	}
	// Clean restart: the temporary files of this node's processes that
	// are gone (a crash) are removed now, not a day later.
	if n, err := a.Spool.RemoveLeftovers(); err != nil {
		logger.Warn("remove temporary files left by a crash", "error", err)
	} else if n > 0 {
		logger.Info("temporary files left by a crash removed", "count", n, "node", a.Spool.Owner().Node)
	}
	a.Exchange = exchange.New(db, a.Blobs, a.Spool, logger.With("component", "exchange"))
	a.Exchange.Clock = a.Now
	a.Exchange.MaxUploadSize = int64(c.MaxUploadSize)
	// An upload has at most this much ahead of its first missing chunk.
	a.Exchange.ReorderBuffer = int64(server.MaxRequestsInFlight-1) * server.MaxWriteLength
	a.Exchange.Retention = c.Retention.Std()
	a.Exchange.HistoryMonths = c.HistoryMonths
	a.Exchange.PasswordValidityMonths = c.PasswordValidityMonths
	a.Exchange.DuplicateWindow = c.DuplicateWindow.Std()
	a.Exchange.MinFreeSpace = exchange.SpacePolicy{Bytes: c.MinFreeSpace.Bytes, Percent: c.MinFreeSpace.Percent}
	a.Exchange.Audit = db
	a.Exchange.Hashes = newHashLimiter(c, a)
	a.Exchange.Refusals = exchange.NewAuditFlood(db, c.Audit.MaxDetailedRefusals, c.Audit.RefusalSummaryAfter.Std(),
		a.Now, logger.With("component", "audit"))
	a.Exchange.Limits.UploadsPerAccount = c.Limits.MaxUploadsPerAccount
	if c.LDAP.Enabled() {
		// No connection yet: a directory down at start-up must not keep
		// local accounts from working.
		if a.Directory, err = directory.New(c.LDAP.Directory(), db, logger.With("component", "directory")); err != nil {
			db.Close()
			return nil, err
		}
		a.Exchange.Directory = a.Directory // directory logins (never a typed nil)
	}
	a.Guard = exchange.NewGuard(guardPolicy(c.Throttle), db, db, a.Now, logger.With("component", "guard"))
	a.Guard.Failures = db // shared by every node
	a.Guard.Flood = a.Exchange.Refusals
	a.Exchange.Guard = a.Guard
	if a.Places, err = places.Load(); err != nil {
		db.Close()
		return nil, err
	}
	a.Life = lifecycle.New(db, a.Blobs, a.Spool, logger.With("component", "lifecycle"))
	a.Life.ReminderDays = c.PasswordReminderDays
	a.Life.PortalURL = c.PortalURL
	a.Life.Audit = true
	if c.SMTP.Host != "" {
		a.Life.Sender = &lifecycle.SMTPSender{Host: c.SMTP.Host, Port: c.SMTP.Port, Security: c.SMTP.Security,
			Username: c.SMTP.Username, Password: c.SMTP.Password, From: c.SMTP.From}
	}
	a.Process = &processing.Processor{
		Store: db, Blobs: a.Blobs, Spool: a.Spool, Places: a.Places, Logger: logger.With("component", "processing"),
		Now: a.Now, Retention: a.Exchange.Retention, StaleAfter: c.ProcessingStaleAfter.Std(), Audit: true,
		Campaigns: a.campaigns,
		Published: func(ctx context.Context, d *pigp.Deposit, r *pigp.Response, contact string) {
			// Notifications never block processing: a failure is logged.
			if err := a.Life.ResponseAvailable(ctx, a.Now(), d, r, contact); err != nil {
				logger.Error("queue availability notice", "deposit", d.ID, "error", err)
			}
		},
	}
	return a, nil
}

// Job names.
const (
	jobProcessing   = "traitement"
	jobExpiry       = "expiration-reponses"
	jobPasswords    = "expiration-mots-de-passe"
	jobNotify       = "notifications"
	jobHousekeeping = "menage"
	jobCheckpoint   = "point-de-controle-audit"
)

// jobs returns the scheduled jobs.
func (a *App) jobs() []scheduler.Job {
	c := a.Config
	return []scheduler.Job{
		{Name: jobProcessing, Schedule: c.ProcessingSchedule, Run: func(ctx context.Context, _ time.Time) (scheduler.Counts, error) {
			s, err := a.Process.Run(ctx)
			return scheduler.Counts{"traites": s.Processed, "rejetes": s.Rejected, "echecs": s.Failed}, err
		}},
		{Name: jobExpiry, Schedule: c.ExpirySchedule, Run: func(ctx context.Context, now time.Time) (scheduler.Counts, error) {
			expired, deleted, err := a.Life.ExpireResponses(ctx, now)
			return scheduler.Counts{"expires": expired, "supprimes": deleted}, err
		}},
		{Name: jobPasswords, Schedule: c.PasswordSchedule, Run: func(ctx context.Context, now time.Time) (scheduler.Counts, error) {
			expired, reminded, err := a.Life.ExpirePasswords(ctx, now)
			return scheduler.Counts{"expires": expired, "rappels": reminded}, err
		}},
		{Name: jobNotify, Schedule: c.NotifySchedule, Run: func(ctx context.Context, now time.Time) (scheduler.Counts, error) {
			sent, failed, err := a.Life.SendNotifications(ctx, now)
			return scheduler.Counts{"envoyes": sent, "echecs": failed}, err
		}},
		{Name: jobHousekeeping, Schedule: c.HousekeepingSchedule, Run: func(ctx context.Context, now time.Time) (scheduler.Counts, error) {
			temps, orphans, err := a.Life.Housekeeping(ctx, now)
			return scheduler.Counts{"temporaires": temps, "orphelins": orphans}, err
		}},
		{Name: jobCheckpoint, Schedule: c.AuditCheckpointSchedule, Run: func(ctx context.Context, _ time.Time) (scheduler.Counts, error) {
			cp, err := a.writeCheckpoint(ctx, a.Now())
			if err != nil {
				return nil, err
			}
			return scheduler.Counts{"lignes": int(cp.Rows)}, nil
		}},
	}
}

// StartScheduler starts the periodic jobs.
func (a *App) StartScheduler() error {
	a.Jobs = &scheduler.Scheduler{Jobs: a.jobs(), Store: a.DB, Logger: a.Logger.With("component", "scheduler"),
		StopTimeout: a.Config.ShutdownTimeout.Std()}
	if a.Metrics != nil {
		a.Jobs.Metrics = a.Metrics
	}
	return a.Jobs.Start()
}

// StartSFTP starts the SSH/SFTP listener.
func (a *App) StartSFTP() error {
	a.applyLimits()
	// Compute the dummy hash of unknown logins now, so that the first one
	// does not take longer than a known one. Its 38 MB of argon2 memory
	// would otherwise stay with the idle process until the next collection.
	pigp.VerifyPassword("", "")
	if a.Config.Auth.ReleaseMemory {
		debug.FreeOSMemory()
	}
	keys, err := server.LoadOrCreateHostKeys(filepath.Join(a.Config.DataDir, "hostkeys"))
	if err != nil {
		return err
	}
	log := a.Logger.With("component", "sftp")
	documents, err := documentation()
	if err != nil {
		return err
	}
	shared := vfs.NewSharedWith(documents)
	trusted, err := config.ParsePrefixes(a.Config.ProxyProtocol.Trusted)
	if err != nil {
		return err
	}
	shared.MaxHandles = a.Config.Limits.MaxOpenHandles
	a.SFTP = &server.Server{
		Addr:     a.Config.SFTPListen,
		HostKeys: keys,
		Auth:     a.Exchange,
		Logger:   log,
		Guard:    a.Guard,

		LoginGraceTime: a.Config.LoginGraceTime.Std(),
		MaxAuthTries:   a.Config.MaxAuthTries,
		MaxConns:       a.Config.MaxConnections,
		MaxConnsPerIP:  a.Config.MaxConnectionsPerIP,
		MaxUnauthPerIP: a.Config.Auth.MaxUnauthenticatedPerIP,
		Ciphers:        a.Config.SSH.Ciphers, // nil: server.CipherOffer
		Requests:       server.NewRequestBudget(a.Config.Limits.RequestsInFlight, idleRelease(a.Config.Limits.ReleaseMemory)),

		MaxSessionsPerAccount: a.Config.Limits.MaxSessionsPerAccount,
		SessionEnded: func(c *pigp.Caller) {
			a.Exchange.EndSession(context.Background(), c)
		},
		NewFS: func(c *pigp.Caller) server.SessionFS {
			return vfs.New(a.Exchange, shared, c, log)
		},
	}
	if len(trusted) > 0 {
		a.SFTP.Proxy = &server.ProxyProtocol{Trusted: trusted, HeaderTimeout: a.Config.ProxyProtocol.HeaderTimeout.Std()}
		log.Info("PROXY protocol accepted from trusted balancers", "trusted", a.Config.ProxyProtocol.Trusted)
	}
	if a.Metrics != nil {
		a.SFTP.Metrics = a.Metrics
	}
	return a.SFTP.Open()
}

// Drain begins a graceful stop: /readyz answers 503 so that the balancer
// takes the node out, and after drain_delay the caller closes the app
// (Close), which stops accepting and lets transfers finish.
func (a *App) Drain(ctx context.Context) {
	if a.Web != nil {
		a.Web.Drain()
	}
	d := a.Config.DrainDelay.Std()
	a.Logger.Info("draining: /readyz answers 503", "delay", d, "timeout", a.Config.ShutdownTimeout.Std())
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// Close shuts the server down: both listeners stop accepting at once,
// their connections and requests (transfers included) get
// shutdown_timeout to finish, then the jobs, the directory and the
// database close.
func (a *App) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout.Std())
	defer cancel()
	var webErr, sftpErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if a.Web != nil {
			webErr = a.CloseWeb(ctx)
		}
	}()
	if a.SFTP != nil {
		sftpErr = a.SFTP.Close(ctx)
	}
	<-done
	errs = append(errs, webErr, sftpErr)
	if a.Jobs != nil {
		errs = append(errs, a.Jobs.Shutdown())
	}
	if a.MetricsServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout.Std())
		errs = append(errs, a.closeMetrics(ctx))
		cancel()
	}
	if a.debug != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		a.closeDebug(ctx) // a profile being taken is cut short
		cancel()
	}
	if a.Exchange != nil {
		a.closeRefusals()
	}
	if a.Directory != nil {
		errs = append(errs, a.Directory.Close())
	}
	if a.DB != nil {
		errs = append(errs, a.DB.Close())
	}
	return errors.Join(errs...)
}

// guardPolicy converts the configured thresholds.
func guardPolicy(t config.Throttle) exchange.GuardPolicy {
	return exchange.GuardPolicy{
		PairFree: t.PairFreeFailures, IPFree: t.IPFreeFailures, IPBanAfter: t.IPBanAfter,
		BaseDelay: t.BaseDelay.Std(), MaxDelay: t.MaxDelay.Std(), BanTime: t.BanTime.Std(),
		AccountSlowAfter: t.AccountSlowAfter, BaseTarpit: t.BaseTarpit.Std(), MaxTarpit: t.MaxTarpit.Std(),
		Forget: t.Forget.Std(),
	}
}

// withApp runs fn with an opened app and closes it afterwards.
func withApp(ctx context.Context, m *Main, cf *configFlags, fn func(a *App) error) error {
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	c.LogLevel = "warn" // operators see problems, not the routine
	a, err := openApp(ctx, c, newLogger(c, m.Stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	a.op = operatorEvent(m)
	err = fn(a)
	if aerr := a.finishOperator(ctx, err); err == nil {
		err = aerr
	}
	return err
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// documentation returns the documents served read-only over SFTP in
// /historique/documentation: the contract's XSDs and the cahier des charges.
func documentation() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, src := range []fs.FS{apa.Schemas(), docs.FS} {
		err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(src, p)
			if err != nil {
				return err
			}
			out[path.Base(p)] = b
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("documentation: %w", err)
		}
	}
	return out, nil
}
