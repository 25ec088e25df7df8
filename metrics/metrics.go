// Package metrics exposes pigp's Prometheus metrics on a registry of its
// own (never the global default one): counters of deposits, downloads,
// logins, processing and job runs fed by the packages that do the work,
// gauges read from the database at scrape time, and the Go runtime and
// process collectors.
//
// Label values are a few fixed words (results, protocols, job names,
// numbers of days): never a login, a SIRET, an address, a file name or
// anything else a client chose.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pigp/pigp"
)

// Label values.
const (
	LoginSuccess = "success"
	LoginFailure = "failure"
	LoginExpired = "expired" // right password, expired: refused
	// LoginThrottled: refused without the password (or key) looked at:
	// the client's address or address and login failed too often, or
	// too many password checks were waiting.
	LoginThrottled = "throttled"

	DepositAccepted = "accepted"
	// DepositDuplicate: a retry of a deposit already made (same account,
	// name and SHA-256 within duplicate_window), answered OK with the
	// first deposit; nothing new recorded.
	DepositDuplicate = "duplicate"
	DepositRefused   = "refused" // name, rights or size: the client was told why
	DepositError     = "error"   // an internal failure: nothing recorded

	JobSuccess = "success"
	JobFailure = "failure"
)

// Protocols as label values: the portal's logins are "https" or "http" as
// the browser reached it (behind a trusted reverse proxy, as the proxy's
// X-Forwarded-Proto says).
var protocols = map[string]string{pigp.ProtocolSFTP: "sftp", pigp.ProtocolHTTP: "http", pigp.ProtocolHTTPS: "https"}

// Source reads the state gauges from the database at scrape time.
type Source interface {
	Stats(ctx context.Context, now time.Time, days []int, jobs []string) (*pigp.Stats, error)
}

// Options configure the metrics.
type Options struct {
	// Source feeds the database gauges (nil: not exposed).
	Source Source
	// Jobs are the scheduled jobs' names: their counters start at zero and
	// their last success is read from Source.
	Jobs []string
	// ExpiringDays are the windows of pigp_password_expiring_accounts.
	ExpiringDays []int
	// StoreDir is the content store's directory, whose file system's free
	// space is exposed ("": not exposed).
	StoreDir string
	// Version and Commit label pigp_build_info.
	Version, Commit string
	// Now returns the current time (time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Metrics holds pigp's metrics. Its methods are safe for concurrent use
// and satisfy the small interfaces that exchange, server, processing and
// scheduler declare.
type Metrics struct {
	reg *prometheus.Registry

	deposits     *prometheus.CounterVec
	depositBytes prometheus.Counter
	downloads    prometheus.Counter
	logins       *prometheus.CounterVec
	sessions     prometheus.Gauge
	processing   prometheus.Histogram
	requests     *prometheus.CounterVec
	jobRuns      *prometheus.CounterVec
	jobs         map[string]bool
}

// New returns the metrics, registered on a new private registry.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), jobs: map[string]bool{}}
	m.deposits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pigp_deposits_total",
		Help: "Deposits by result: accepted (recorded, client told OK), duplicate (a retry answered with the first deposit), refused (name, rights or size), error (internal failure).",
	}, []string{"result"})
	m.depositBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pigp_deposit_bytes_total", Help: "Bytes of the accepted deposits.",
	})
	m.downloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pigp_downloads_total", Help: "Responses and reports downloaded to the end (recorded downloads).",
	})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pigp_logins_total",
		Help: "Login attempts by protocol (sftp, https, http) and result (success, failure, expired, throttled: refused unchecked).",
	}, []string{"protocol", "result"})
	m.sessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pigp_sftp_sessions", Help: "SFTP sessions open on this node.",
	})
	m.processing = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pigp_processing_seconds",
		Help:    "Time to answer one deposit: validation, matching, writing and committing the answer.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pigp_processing_requests_total",
		Help: "Requests (demandes) of the answered call files by outcome: found, not_found, ambiguous, rejected.",
	}, []string{"outcome"})
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pigp_job_runs_total", Help: "Scheduled job runs on this node by job and result (success, failure).",
	}, []string{"job_name", "result"})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pigp_build_info", Help: "Always 1: the running build's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": o.Version, "commit": o.Commit, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	// Every series exists from the start, at zero: rate() and increase()
	// see the first event, and dashboards show zero rather than nothing.
	for _, r := range []string{DepositAccepted, DepositDuplicate, DepositRefused, DepositError} {
		m.deposits.WithLabelValues(r)
	}
	for _, p := range protocols {
		for _, r := range []string{LoginSuccess, LoginFailure, LoginExpired, LoginThrottled} {
			m.logins.WithLabelValues(p, r)
		}
	}
	for _, oc := range []string{"found", "not_found", "ambiguous", "rejected"} {
		m.requests.WithLabelValues(oc)
	}
	for _, j := range o.Jobs {
		m.jobs[j] = true
		m.jobRuns.WithLabelValues(j, JobSuccess)
		m.jobRuns.WithLabelValues(j, JobFailure)
	}

	m.reg.MustRegister(m.deposits, m.depositBytes, m.downloads, m.logins, m.sessions, m.processing,
		m.requests, m.jobRuns, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{o: o})
	return m
}

// Registry returns the private registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector (database down) must not hide the others.
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg,
		EnableOpenMetrics: true,
	})
}

// Login counts a login attempt (exchange.Metrics).
func (m *Metrics) Login(protocol, result string) {
	p, ok := protocols[protocol]
	if !ok {
		p = "other"
	}
	m.logins.WithLabelValues(p, result).Inc()
}

// Deposit counts a deposit and, when accepted, its bytes (exchange.Metrics).
func (m *Metrics) Deposit(result string, size int64) {
	m.deposits.WithLabelValues(result).Inc()
	if result == DepositAccepted && size > 0 {
		m.depositBytes.Add(float64(size))
	}
}

// Download counts a recorded download (exchange.Metrics).
func (m *Metrics) Download() { m.downloads.Inc() }

// SFTPSessionStarted and SFTPSessionEnded follow the open SFTP sessions
// (server.Metrics).
func (m *Metrics) SFTPSessionStarted() { m.sessions.Inc() }

// SFTPSessionEnded: see SFTPSessionStarted.
func (m *Metrics) SFTPSessionEnded() { m.sessions.Dec() }

// DepositProcessed observes one answered deposit (processing.Metrics).
func (m *Metrics) DepositProcessed(elapsed time.Duration, found, notFound, ambiguous, rejected int) {
	m.processing.Observe(elapsed.Seconds())
	m.requests.WithLabelValues("found").Add(float64(found))
	m.requests.WithLabelValues("not_found").Add(float64(notFound))
	m.requests.WithLabelValues("ambiguous").Add(float64(ambiguous))
	m.requests.WithLabelValues("rejected").Add(float64(rejected))
}

// JobRun counts a run of a scheduled job (scheduler.Metrics). Only the
// jobs named in Options are counted, so the label stays bounded.
func (m *Metrics) JobRun(job string, ok bool) {
	if !m.jobs[job] {
		return
	}
	r := JobSuccess
	if !ok {
		r = JobFailure
	}
	m.jobRuns.WithLabelValues(job, r).Inc()
}

// stateCollector reads the database and the disk when scraped.
type stateCollector struct {
	o Options
}

var (
	descDBUp = prometheus.NewDesc("pigp_database_up",
		"1 when the database answered the last scrape's queries, 0 otherwise.", nil, nil)
	descWaiting = prometheus.NewDesc("pigp_deposits_waiting",
		"Deposits not answered yet (RECU or EN_COURS), on every node.", nil, nil)
	descOldest = prometheus.NewDesc("pigp_deposits_oldest_waiting_seconds",
		"Age of the oldest deposit not answered yet (0 when none waits).", nil, nil)
	descAvailable = prometheus.NewDesc("pigp_responses_available",
		"Responses and reports available in every /retrait, not expired.", nil, nil)
	descExpiring = prometheus.NewDesc("pigp_password_expiring_accounts",
		"Active accounts whose password expires within the given number of days.", []string{"days"}, nil)
	descLastSuccess = prometheus.NewDesc("pigp_job_last_success_timestamp_seconds",
		"When the job last finished without error, on any node (Unix time; absent: never).", []string{"job_name"}, nil)
	descFree = prometheus.NewDesc("pigp_store_free_bytes",
		"Bytes available to pigp on the content store's file system.", nil, nil)
	descSize = prometheus.NewDesc("pigp_store_size_bytes",
		"Size of the content store's file system.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDBUp, descWaiting, descOldest, descAvailable, descExpiring,
		descLastSuccess, descFree, descSize} {
		ch <- d
	}
}

// scrapeTimeout bounds the database queries of one scrape.
const scrapeTimeout = 5 * time.Second

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.o.Now()
	if c.o.Source != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		s, err := c.o.Source.Stats(ctx, now, c.o.ExpiringDays, c.o.Jobs)
		cancel()
		if err != nil {
			c.o.Logger.Warn("metrics: read state from the database", "error", err)
			ch <- prometheus.MustNewConstMetric(descDBUp, prometheus.GaugeValue, 0)
		} else {
			ch <- prometheus.MustNewConstMetric(descDBUp, prometheus.GaugeValue, 1)
			c.collectStats(ch, now, s)
		}
	}
	if c.o.StoreDir != "" {
		free, size, err := diskSpace(c.o.StoreDir)
		switch {
		case errors.Is(err, errUnsupported):
		case err != nil:
			c.o.Logger.Warn("metrics: free space of the content store", "error", err)
		default:
			ch <- prometheus.MustNewConstMetric(descFree, prometheus.GaugeValue, float64(free))
			ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(size))
		}
	}
}

func (c *stateCollector) collectStats(ch chan<- prometheus.Metric, now time.Time, s *pigp.Stats) {
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(s.DepositsWaiting))
	age := 0.0
	if !s.OldestWaiting.IsZero() {
		age = max(now.Sub(s.OldestWaiting).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descAvailable, prometheus.GaugeValue, float64(s.ResponsesAvailable))
	for _, d := range c.o.ExpiringDays {
		ch <- prometheus.MustNewConstMetric(descExpiring, prometheus.GaugeValue, float64(s.PasswordsExpiring[d]), strconv.Itoa(d))
	}
	for _, j := range c.o.Jobs {
		if t, ok := s.JobLastSuccess[j]; ok {
			ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(t.UnixNano())/1e9, j)
		}
	}
}

var errUnsupported = errors.New("not supported on this system")

// Server serves /metrics on its own listener, apart from the portal.
type Server struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// Listen starts serving m on addr (host:port; port 0 picks a free one).
func Listen(addr string, m *Metrics, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "pigp metrics: /metrics")
	})
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "error", err)
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener, letting scrapes in flight end within ctx.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.wg.Wait()
	return err
}
