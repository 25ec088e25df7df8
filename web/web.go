// Package web is pigp's portal: the screens of the Portail de la Gestion
// Publique for the APA exchange (connexion, applications, dépôt, retrait,
// historiques, changement de mot de passe), built with the État's design
// system (DSFR, embedded), on the same exchange service as SFTP.
//
// Everything a person reads is in French. Sessions live in the database
// (any node serves any session) and expire after inactivity and after an
// absolute lifetime; every form carries a CSRF token; logins are
// throttled per address and per identifier (by the exchange, as over
// SSH); uploads are streamed to the exchange without being held in
// memory. Behind trusted reverse proxies, the browser's address and scheme
// come from their headers.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// Exchange is what the portal needs from the exchange service.
type Exchange interface {
	// Login is the guarded password login shared with SSH: it returns
	// the caller, or EUNAUTHORIZED (never saying whether the login
	// exists), EEXPIRED, or ELIMIT when throttled (pigp.RetryAfter).
	Login(ctx context.Context, ip, login, password, protocol string) (*pigp.Caller, error)
	// ChangePassword applies the password policy through the same guard
	// and returns the caller with the new password: EINVALID naming the
	// rule, EUNAUTHORIZED for a wrong current password, EEXPIRED, ELIMIT.
	ChangePassword(ctx context.Context, caller *pigp.Caller, current, next string) (*pigp.Caller, error)
	// BeginDeposit checks the name (EINVALID, EFORBIDDEN) and opens an upload.
	BeginDeposit(ctx context.Context, caller *pigp.Caller, name string) (*exchange.Upload, error)
	// Responses lists the caller's /retrait.
	Responses(ctx context.Context, caller *pigp.Caller) ([]*pigp.Response, error)
	// OpenResponse opens a response; closing the reader after a full read
	// records the download (ENOTFOUND when absent or expired).
	OpenResponse(ctx context.Context, caller *pigp.Caller, name string) (*exchange.ResponseReader, error)
	// DepositsCSV and DownloadsCSV return depots.csv and retraits.csv of
	// the caller's SIRETs (contract §7), the same files as over SFTP.
	DepositsCSV(ctx context.Context, caller *pigp.Caller) ([]byte, error)
	DownloadsCSV(ctx context.Context, caller *pigp.Caller) ([]byte, error)
	// AuditExport writes the audit export of the SIRETs the caller audits,
	// period [from, to[ (zero: open), and returns its row count:
	// EFORBIDDEN for a caller who audits none, EINVALID for an empty
	// period, nothing written to w before the export is recorded.
	AuditExport(ctx context.Context, caller *pigp.Caller, from, to time.Time, w io.Writer) (int, error)
	// EndSession records the refusals counted in the caller's session.
	EndSession(ctx context.Context, caller *pigp.Caller)
}

// History is what the portal needs from the store for the history pages.
type History interface {
	ListDeposits(ctx context.Context, f pigp.DepositFilter) ([]*pigp.Deposit, error)
	CountDeposits(ctx context.Context, f pigp.DepositFilter) (int64, error)
	ListDownloads(ctx context.Context, f pigp.HistoryFilter) ([]*pigp.Download, error)
	CountDownloads(ctx context.Context, f pigp.HistoryFilter) (int64, error)
}

// Pinger reports whether the database answers (for /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Space reports whether the content store has its minimum free space (for
// /readyz).
type Space interface {
	SpaceStatus() (free, required uint64, ok bool, err error)
}

// ContentStore reports whether the content store (the data directory or
// the S3 bucket) answers, for /readyz.
type ContentStore interface {
	Check(ctx context.Context) error
}

// DirectoryChecker reports whether the directory of internal agents
// answers (for /readyz: without it the portal is degraded, not down, since
// local accounts keep working).
type DirectoryChecker interface {
	Check(ctx context.Context) error
}

// Config holds the settings of the portal. Zero values take the defaults
// given on each field.
type Config struct {
	// Addr is the listen address (":8080").
	Addr string
	// TLSCertFile and TLSKeyFile enable HTTPS when both are set.
	TLSCertFile, TLSKeyFile string
	// SessionIdle ends a session after this much inactivity (15 min).
	SessionIdle time.Duration
	// SessionMax ends a session this long after login whatever its use (8 h).
	SessionMax time.Duration
	// MaxUploadSize is the largest deposit, as in the exchange (100 Mio).
	MaxUploadSize int64
	// Retention is how long a response stays available (21 days).
	Retention time.Duration
	// HistoryMonths is the window of the history pages (12).
	HistoryMonths int
	// PasswordValidityMonths is shown in the help pages (12).
	PasswordValidityMonths int
	// Schemas holds the XSDs published on the portal (apa.Schemas()),
	// as *.xsd files at its root.
	Schemas fs.FS
	// Docs holds the cahier des charges at "cahier-des-charges.md".
	// Either may be nil or lack the file: the page then says so.
	Docs fs.FS
	// Now returns the current time (time.Now).
	Now func() time.Time
	// ShutdownTimeout bounds Close when its context has no deadline.
	ShutdownTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For,
	// Forwarded and X-Forwarded-Proto headers are believed (none: the
	// headers are ignored).
	TrustedProxies []netip.Prefix
	// MaxSessionsPerAccount bounds the sessions of one account (0: no
	// bound): a login beyond ends the account's least recently used one, on every node.
	MaxSessionsPerAccount int
}

// Server is the portal's HTTP(S) server.
type Server struct {
	Config   Config
	Exchange Exchange
	History  History
	DB       Pinger
	// Space, if set, makes /readyz fail below the minimum free space.
	Space Space
	// Contents, if set, makes /readyz fail while the content store does
	// not answer.
	Contents ContentStore
	// Directory is the directory of internal agents (nil: none).
	Directory DirectoryChecker
	Logger    *slog.Logger
	// Sessions keeps the portal sessions (required): the database, shared
	// by every node.
	Sessions SessionStore

	ln       net.Listener
	srv      *http.Server
	tls      bool
	tmpl     map[string]*template.Template
	sessions *sessions
	draining atomic.Bool
	wg       sync.WaitGroup
}

// Open validates the settings, binds the listener synchronously and starts
// serving in a goroutine.
func (s *Server) Open() error {
	if s.Exchange == nil || s.History == nil || s.Sessions == nil {
		return errors.New("web: exchange, history and session store are required")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	c := &s.Config
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 15 * time.Minute
	}
	if c.SessionMax <= 0 {
		c.SessionMax = 8 * time.Hour
	}
	if c.MaxUploadSize <= 0 {
		c.MaxUploadSize = pigp.DefaultMaxUploadSize
	}
	if c.Retention <= 0 {
		c.Retention = pigp.DefaultRetention
	}
	if c.HistoryMonths <= 0 {
		c.HistoryMonths = 12
	}
	if c.PasswordValidityMonths <= 0 {
		c.PasswordValidityMonths = pigp.DefaultPasswordValidity
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("web: both a TLS certificate and a key are needed")
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return err
	}
	s.tmpl = tmpl
	s.sessions = &sessions{store: s.Sessions, now: c.Now, idle: c.SessionIdle, max: c.SessionMax, perAccount: c.MaxSessionsPerAccount}

	var tlsConfig *tls.Config
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("web: load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		s.tls = true
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", c.Addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("portal stopped", "error", err)
		}
	}()
	if s.tls {
		s.Logger.Info("portal listening", "addr", ln.Addr().String(), "tls", true)
	} else {
		s.Logger.Warn("portal listening WITHOUT TLS: passwords and files cross the network in clear; "+
			"configure a certificate and key, or put a TLS reverse proxy in front", "addr", ln.Addr().String())
	}
	return nil
}

// ListenAddr returns the bound address.
func (s *Server) ListenAddr() net.Addr { return s.ln.Addr() }

// TLS reports whether the portal serves HTTPS itself.
func (s *Server) TLS() bool { return s.tls }

// Drain makes /readyz answer 503 "draining", so that a balancer stops
// sending new clients before the node stops accepting them (Close).
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops accepting requests and waits for those in flight (uploads
// included) until ctx is done, then closes what remains.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Config.ShutdownTimeout)
		defer cancel()
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.wg.Wait()
	return err
}
