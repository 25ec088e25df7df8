// Package server is pigp's SSH listener: it authenticates accounts by
// password or public key, accepts only the "sftp" subsystem and serves each
// session's virtual file system with pkg/sftp.
package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// Authenticator checks credentials (exchange.Service). Its errors are
// *pigp.Error, mapped once by authError: EUNAUTHORIZED is a plain refusal,
// the others carry a French message shown as an SSH banner.
type Authenticator interface {
	// Login is the guarded password login: throttling, failures, tarpit
	// and audit are the exchange's.
	Login(ctx context.Context, ip, login, password, protocol string) (*pigp.Caller, error)
	// ChangePassword changes the caller's password (the same guard) and
	// returns the caller with it.
	ChangePassword(ctx context.Context, caller *pigp.Caller, current, next string) (*pigp.Caller, error)
	AuthenticateKey(ctx context.Context, login, fingerprint, remoteIP, protocol string) (*pigp.Caller, error)
	// KeyOffersExhausted records that a connection had MaxAuthTries public
	// keys refused (a failed login for the guard).
	KeyOffersExhausted(ctx context.Context, remoteIP, login, protocol string)
	// AuditKeyLogin records a public-key login once the key has signed.
	AuditKeyLogin(ctx context.Context, caller *pigp.Caller, fingerprint string) error
	// Now returns the current time (whether a password change is due).
	Now() time.Time
}

// Guard refuses banned addresses as they connect, before any SSH
// exchange (exchange.Guard, shared with the portal; the login itself is
// throttled by the Authenticator).
type Guard interface {
	// Banned returns how long ip stays banned (0: not banned).
	Banned(ctx context.Context, ip string) (time.Duration, error)
	// Throttled records an attempt refused unchecked (blocked or banned).
	Throttled(ctx context.Context, ip, login, protocol string, wait time.Duration)
}

// Metrics follows the open SFTP sessions (nil: not followed).
type Metrics interface {
	SFTPSessionStarted()
	SFTPSessionEnded()
}

// SessionFS is the file system of one SFTP session.
type SessionFS interface {
	Handlers() sftp.Handlers
	Close()
}

// Algorithms are set explicitly; none is in ssh.InsecureAlgorithms(). CTR
// ciphers and the non-ETM HMACs are kept for libssh2 1.10 (curl) and JSch.
// Ciphers lists those that may be offered (ssh.ciphers); the default
// offer is CipherOffer's.
var (
	KeyExchanges = []string{
		ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256, ssh.KeyExchangeECDHP384, ssh.KeyExchangeECDHP521,
		ssh.KeyExchangeDH16SHA512, ssh.KeyExchangeDH14SHA256,
	}
	Ciphers = []string{
		ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
		ssh.CipherAES256CTR, ssh.CipherAES192CTR, ssh.CipherAES128CTR,
	}
	MACs = []string{
		ssh.HMACSHA256ETM, ssh.HMACSHA512ETM, ssh.HMACSHA256, ssh.HMACSHA512,
	}
	PublicKeyAuthAlgorithms = []string{
		ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
	}
)

// Server is the SSH/SFTP listener.
type Server struct {
	Addr     string
	HostKeys []ssh.Signer
	Auth     Authenticator
	NewFS    func(caller *pigp.Caller) SessionFS
	Logger   *slog.Logger
	// LoginGraceTime closes connections that have not authenticated in time.
	LoginGraceTime time.Duration
	// MaxAuthTries bounds authentication attempts per connection.
	MaxAuthTries int
	// MaxConns and MaxConnsPerIP bound the open connections, in total and
	// per client address; the connections beyond are refused with a line
	// of text before the SSH version exchange.
	MaxConns      int
	MaxConnsPerIP int
	// MaxUnauthPerIP bounds the connections of one address that have not
	// authenticated yet (0: MaxConnsPerIP).
	MaxUnauthPerIP int
	// MaxSessionsPerAccount bounds the connections of one account (0: no
	// bound); a login beyond is refused with a French banner.
	MaxSessionsPerAccount int
	// SessionEnded is called when an authenticated connection closes
	// (the exchange records the session's counted refusals then).
	SessionEnded func(caller *pigp.Caller)
	// Guard throttles failed logins and refuses banned addresses (nil: none).
	Guard Guard
	// Proxy accepts the PROXY protocol from trusted balancers (nil: none).
	Proxy *ProxyProtocol
	// ServerVersion is the SSH identification string.
	ServerVersion string
	// Metrics follows the open SFTP sessions (nil: not followed).
	Metrics Metrics
	// Ciphers are the ciphers offered, in the server's order of
	// preference (empty: CipherOffer's default for this CPU): a client
	// gets the first of them it supports, whatever its own order.
	Ciphers []string
	// Requests bounds the SFTP requests in flight of all sessions
	// together (nil: each session alone is bounded).
	Requests *RequestBudget

	ln      net.Listener
	config  *ssh.ServerConfig
	configs map[string]*ssh.ServerConfig // one per cipher: the offer of one
	wg      sync.WaitGroup
	// ctx is the connections' context (their logins and ban checks),
	// cancelled when Close stops waiting for them.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	perIP    map[string]int
	unauth   map[string]int // connections not authenticated yet, per address
	accounts map[int64]int  // authenticated connections per account
	closing  bool
	// active counts the tracked connections, authenticated or not: a
	// graceful stop lets a login begun before it finish and transfer.
	active sync.WaitGroup
	sleep  func(time.Duration) // the accept loop's back-off (tests)
	// rekeyThreshold is the SSH re-key threshold (0: x/crypto's
	// default); tests set a small one to re-key during transfers.
	rekeyThreshold uint64
}

// Open validates the settings, binds the listener and starts serving.
func (s *Server) Open() error {
	if len(s.HostKeys) == 0 || s.Auth == nil || s.NewFS == nil {
		return errors.New("server: host keys, authenticator and file system are required")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.LoginGraceTime == 0 {
		s.LoginGraceTime = 60 * time.Second
	}
	if s.MaxAuthTries == 0 {
		s.MaxAuthTries = 6
	}
	if s.MaxConns == 0 {
		s.MaxConns = 1000
	}
	if s.MaxConnsPerIP == 0 {
		s.MaxConnsPerIP = 100
	}
	if s.MaxUnauthPerIP == 0 {
		s.MaxUnauthPerIP = s.MaxConnsPerIP
	}
	if s.ServerVersion == "" {
		s.ServerVersion = "SSH-2.0-pigp"
	}
	if len(s.Ciphers) == 0 {
		s.Ciphers = CipherOffer(HasAESHardware())
	}
	s.config = s.sshConfig(s.Ciphers)
	s.configs = map[string]*ssh.ServerConfig{}
	for _, c := range s.Ciphers {
		s.configs[c] = s.sshConfig([]string{c})
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	if s.Proxy != nil {
		ln = s.Proxy.listen(ln, s.Logger)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = map[net.Conn]struct{}{}
	s.perIP = map[string]int{}
	s.unauth = map[string]int{}
	s.accounts = map[int64]int{}
	s.wg.Add(1)
	go s.serve(ln)
	s.Logger.Info("sftp server listening", "addr", ln.Addr().String())
	return nil
}

// ListenAddr returns the bound address.
func (s *Server) ListenAddr() net.Addr { return s.ln.Addr() }

// sshConfig returns the SSH configuration offering ciphers; each
// connection gets a copy whose authentication runs in its context
// (connConfig).
func (s *Server) sshConfig(ciphers []string) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config:                  ssh.Config{KeyExchanges: KeyExchanges, Ciphers: ciphers, MACs: MACs, RekeyThreshold: s.rekeyThreshold},
		PublicKeyAuthAlgorithms: PublicKeyAuthAlgorithms,
		MaxAuthTries:            s.MaxAuthTries,
		ServerVersion:           s.ServerVersion,
		AuthLogCallback: func(conn ssh.ConnMetadata, method string, err error) {
			if method == "none" {
				return
			}
			if err != nil {
				s.Logger.Info("ssh auth failed", "login", conn.User(), "ip", remoteIP(conn.RemoteAddr()), "method", method)
			} else {
				s.Logger.Info("ssh auth ok", "login", conn.User(), "ip", remoteIP(conn.RemoteAddr()), "method", method)
			}
		},
	}
	for _, k := range s.HostKeys {
		cfg.AddHostKey(k)
	}
	return cfg
}

// connConfig returns the SSH configuration of one connection: cfg (the
// server's, for the cipher chosen), with authentication callbacks that
// run in ctx, the connection's context, and count the public keys
// refused on this connection.
func (s *Server) connConfig(ctx context.Context, cfg *ssh.ServerConfig) *ssh.ServerConfig {
	c := *cfg
	c.PasswordCallback = func(conn ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
		return s.passwordCallback(ctx, conn, password)
	}
	offers := new(keyOffers)
	c.PublicKeyCallback = func(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		return s.publicKeyCallback(ctx, offers, conn, key)
	}
	c.KeyboardInteractiveCallback = func(conn ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
		return s.keyboardInteractive(ctx, conn, client)
	}
	c.VerifiedPublicKeyCallback = func(conn ssh.ConnMetadata, key ssh.PublicKey, p *ssh.Permissions, alg string) (*ssh.Permissions, error) {
		return s.verifiedPublicKeyCallback(ctx, conn, key, p, alg)
	}
	return &c
}

const callerKey = "pigp.caller"

// authError maps an authentication error to what the SSH client sees,
// once for every method: a plain refusal for EUNAUTHORIZED (the client
// tries its next method), a French banner for the refusals that say why
// (expired password, throttled, directory unreachable, service
// unavailable, ...). An internal error is logged; the client is told the
// service is unavailable, never left to think the password wrong.
func (s *Server) authError(conn ssh.ConnMetadata, err error) error {
	switch pigp.ErrorCode(err) {
	case pigp.EUNAUTHORIZED:
		return err
	case pigp.EINTERNAL, pigp.EUNAVAILABLE:
		// The server's own failure (database, full disk).
		s.Logger.Error("authentication error", "login", conn.User(), "error", err)
		return &ssh.BannerError{Err: errors.New("authentication unavailable"), Message: msgUnavailable}
	}
	return &ssh.BannerError{Err: err, Message: pigp.ErrorMessage(err) + "\r\n"}
}

// msgMustChange tells a password-only client why it is refused.
const msgMustChange = "Votre mot de passe est temporaire et doit être changé : connectez-vous avec un client interactif (saisie au clavier) ou sur le portail.\r\n"

// login is the password login of both password methods.
func (s *Server) login(ctx context.Context, conn ssh.ConnMetadata, password string) (*pigp.Caller, error) {
	c, err := s.Auth.Login(ctx, remoteIP(conn.RemoteAddr()), conn.User(), password, pigp.ProtocolSFTP)
	if err != nil {
		return nil, s.authError(conn, err)
	}
	return c, nil
}

func (s *Server) passwordCallback(ctx context.Context, conn ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	c, err := s.login(ctx, conn, string(password))
	if err != nil {
		return nil, err
	}
	if c.PasswordTemporary {
		return nil, &ssh.BannerError{Err: errors.New("password change required"), Message: msgMustChange}
	}
	if err := s.accountFull(c); err != nil {
		return nil, err
	}
	return &ssh.Permissions{ExtraData: map[any]any{callerKey: c}}, nil
}

// keyboardInteractive asks for the password and, when a change is due
// (temporary, or expiring within pigp.PasswordChangeWindow), for a new one
// twice (French prompts); the new password goes through the same policy
// as everywhere else.
func (s *Server) keyboardInteractive(ctx context.Context, conn ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	// "(password)" lets tools such as sshpass recognise the prompt.
	ans, err := client("", "", []string{"Mot de passe (password) : "}, []bool{false})
	if err != nil || len(ans) != 1 {
		return nil, errors.New("keyboard-interactive aborted")
	}
	current := ans[0]
	c, err := s.login(ctx, conn, current)
	if err != nil {
		return nil, err
	}
	if err := s.accountFull(c); err != nil {
		return nil, err
	}
	if !c.PasswordChangeDue(s.Auth.Now()) {
		return &ssh.Permissions{ExtraData: map[any]any{callerKey: c}}, nil
	}
	instruction := "Votre mot de passe est temporaire : choisissez-en un nouveau."
	if !c.PasswordTemporary {
		instruction = "Votre mot de passe expire le " + c.PasswordExpiresAt.Format("02/01/2006") + " : choisissez-en un nouveau."
	}
	instruction += " " + pigp.PasswordPolicyText
	for attempt := 0; attempt < 3; attempt++ {
		ans, err := client("Changement de mot de passe", instruction,
			[]string{"Nouveau mot de passe : ", "Confirmation du nouveau mot de passe : "}, []bool{false, false})
		if err != nil || len(ans) != 2 {
			return nil, errors.New("keyboard-interactive aborted")
		}
		if ans[0] != ans[1] {
			instruction = "Les deux saisies sont différentes. Recommencez."
			continue
		}
		changed, err := s.Auth.ChangePassword(ctx, c, current, ans[0])
		if err == nil {
			s.Logger.Info("password changed over ssh", "login", c.Login, "ip", c.RemoteIP)
			return &ssh.Permissions{ExtraData: map[any]any{callerKey: changed}}, nil
		}
		if pigp.ErrorCode(err) != pigp.EINVALID {
			return nil, s.authError(conn, err)
		}
		instruction = pigp.ErrorMessage(err) + ". Recommencez."
	}
	return nil, &ssh.BannerError{Err: errors.New("password change failed"), Message: "Mot de passe non changé.\r\n"}
}

// keyOffers counts the public keys refused on one connection (the SSH
// library calls the callbacks of a connection one at a time).
type keyOffers struct {
	refused int // offers refused, for any reason
	unknown int // of which keys looked up and not found (or expired)
}

// errTooManyKeys refuses the key offers of a connection past MaxAuthTries.
var errTooManyKeys = errors.New("too many public keys offered")

// publicKeyCallback approves a key the account holds; the session is scoped
// only from the permissions of the key that then signs (CVE-2024-45337).
// A connection gets MaxAuthTries keys looked up (and refusals recorded),
// as OpenSSH's sshd allows; the next ones are refused without a look, and
// the connection counts once as a failed login (the SSH library ends it
// soon after).
func (s *Server) publicKeyCallback(ctx context.Context, offers *keyOffers, conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if offers.refused >= s.MaxAuthTries {
		return nil, errTooManyKeys
	}
	fp := ssh.FingerprintSHA256(key)
	ip := remoteIP(conn.RemoteAddr())
	c, err := s.Auth.AuthenticateKey(ctx, conn.User(), fp, ip, pigp.ProtocolSFTP)
	if err != nil {
		offers.refused++
		if code := pigp.ErrorCode(err); code == pigp.EUNAUTHORIZED || code == pigp.EEXPIRED {
			if offers.unknown++; offers.unknown == s.MaxAuthTries {
				s.Auth.KeyOffersExhausted(ctx, ip, conn.User(), pigp.ProtocolSFTP)
			}
		}
		return nil, s.authError(conn, err)
	}
	return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": fp}, ExtraData: map[any]any{callerKey: c}}, nil
}

func (s *Server) verifiedPublicKeyCallback(ctx context.Context, conn ssh.ConnMetadata, key ssh.PublicKey, p *ssh.Permissions, _ string) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	if p == nil || p.Extensions["pubkey-fp"] != fp {
		return nil, errors.New("key mismatch")
	}
	c, _ := p.ExtraData[callerKey].(*pigp.Caller)
	if c == nil || c.Login != conn.User() {
		return nil, errors.New("key mismatch")
	}
	if err := s.accountFull(c); err != nil {
		return nil, err
	}
	if err := s.Auth.AuditKeyLogin(ctx, c, fp); err != nil {
		return nil, s.authError(conn, err)
	}
	return p, nil
}

// msgTooManySessions refuses a login of an account at its session limit.
const msgTooManySessions = "Connexion refusée : ce compte a déjà %d sessions ouvertes (au plus %d à la fois). " +
	"Fermez des sessions ou attendez la fin des transferts en cours, puis reconnectez-vous.\r\n"

// accountFull refuses a login when the caller's account has all its
// sessions open (checked again, strictly, once the connection is set up).
func (s *Server) accountFull(c *pigp.Caller) error {
	if s.MaxSessionsPerAccount <= 0 {
		return nil
	}
	s.mu.Lock()
	n := s.accounts[c.AccountID]
	s.mu.Unlock()
	if n < s.MaxSessionsPerAccount {
		return nil
	}
	s.Logger.Warn("ssh login refused: account at its session limit", "login", c.Login, "ip", c.RemoteIP,
		"sessions", n, "max", s.MaxSessionsPerAccount)
	return &ssh.BannerError{Err: errors.New("too many sessions"), Message: fmt.Sprintf(msgTooManySessions, n, s.MaxSessionsPerAccount)}
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Back-off of the accept loop after an error (EMFILE, ENFILE, ...):
// doubling from acceptBackoffMin up to acceptBackoffMax, reset by the
// next accepted connection.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	var logged time.Time
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors (EMFILE, ENFILE) or another transient
			// failure: wait, longer each time, instead of spinning; the
			// descriptors reserved for logins come back as files close.
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			if now := time.Now(); now.Sub(logged) >= time.Second {
				logged = now
				s.Logger.Warn("accept failed, backing off", "error", err, "retry_in", backoff)
			}
			if s.sleep != nil {
				s.sleep(backoff)
			} else {
				time.Sleep(backoff)
			}
			continue
		}
		backoff = 0
		if msg, ok := s.track(conn); !ok {
			if msg != "" {
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					refuse(conn, msg)
				}()
			} else {
				conn.Close()
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.handleConn(conn)
		}()
	}
}

// Messages of refused connections, sent before the SSH version exchange
// (RFC 4253 §4.2 lets a server send lines of text first).
const (
	msgTooManyUnauth = "pigp : trop de connexions en cours d'authentification depuis votre adresse, réessayez dans quelques secondes.\r\n"
	msgTooManyConns  = "pigp : trop de connexions simultanées sur le serveur, réessayez dans quelques minutes.\r\n"
	msgTooManyForIP  = "pigp : trop de connexions simultanées depuis votre adresse, réessayez après la fin des transferts en cours.\r\n"
	msgBanned        = "pigp : adresse temporairement bloquée après trop d'échecs de connexion, réessayez dans %d minute(s).\r\n"
	msgUnavailable   = "pigp : service momentanément indisponible, réessayez plus tard.\r\n"
)

// track registers a new connection, or returns why it is refused.
func (s *Server) track(c net.Conn) (string, bool) {
	ip := remoteIP(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return "", false
	case len(s.conns) >= s.MaxConns:
		s.Logger.Warn("connection refused: server full", "ip", ip, "max", s.MaxConns)
		return msgTooManyConns, false
	case s.perIP[ip] >= s.MaxConnsPerIP:
		s.Logger.Warn("connection refused: too many from address", "ip", ip, "max", s.MaxConnsPerIP)
		return msgTooManyForIP, false
	case s.unauth[ip] >= s.MaxUnauthPerIP:
		s.Logger.Warn("connection refused: too many unauthenticated from address", "ip", ip, "max", s.MaxUnauthPerIP)
		return msgTooManyUnauth, false
	}
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	s.unauth[ip]++
	s.active.Add(1)
	return "", true
}

// authenticated moves c from the unauthenticated connections of its
// address to its account's; it reports false when the account has all
// its sessions open.
func (s *Server) authenticated(c net.Conn, caller *pigp.Caller) bool {
	ip := remoteIP(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveUnauthLocked(ip)
	if s.MaxSessionsPerAccount > 0 && s.accounts[caller.AccountID] >= s.MaxSessionsPerAccount {
		return false
	}
	s.accounts[caller.AccountID]++
	return true
}

func (s *Server) leaveUnauthLocked(ip string) {
	if s.unauth[ip]--; s.unauth[ip] <= 0 {
		delete(s.unauth, ip)
	}
}

// sessionClosed releases the account's place.
func (s *Server) sessionClosed(caller *pigp.Caller) {
	s.mu.Lock()
	if s.accounts[caller.AccountID]--; s.accounts[caller.AccountID] <= 0 {
		delete(s.accounts, caller.AccountID)
	}
	s.mu.Unlock()
}

func (s *Server) untrack(c net.Conn) {
	ip := remoteIP(c.RemoteAddr())
	s.mu.Lock()
	delete(s.conns, c)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.mu.Unlock()
	c.Close()
	s.active.Done()
}

// refuse writes msg and closes c, without reading anything from it.
func refuse(c net.Conn, msg string) {
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, msg)
	c.Close()
}

func (s *Server) handleConn(nc net.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	graceEnd := time.Now().Add(s.LoginGraceTime)
	nc.SetDeadline(graceEnd)
	ip := remoteIP(nc.RemoteAddr())
	authDone := false
	defer func() {
		if !authDone {
			s.mu.Lock()
			s.leaveUnauthLocked(ip)
			s.mu.Unlock()
		}
	}()
	if s.Guard != nil {
		d, err := s.Guard.Banned(ctx, ip)
		if err != nil {
			s.Logger.Error("check ban", "ip", ip, "error", err)
			io.WriteString(nc, msgUnavailable)
			return
		}
		if d > 0 {
			s.Logger.Info("connection refused: banned address", "ip", ip, "remaining", d)
			s.Guard.Throttled(ctx, ip, "", pigp.ProtocolSFTP, d)
			io.WriteString(nc, fmt.Sprintf(msgBanned, int(d.Minutes())+1))
			return
		}
	}
	// The server chooses the cipher: read the client's KEXINIT first.
	pc, client, err := peekClient(nc, s.ServerVersion, kexInitWait, graceEnd)
	if err != nil {
		s.Logger.Debug("ssh identification failed", "ip", ip, "error", err)
		return
	}
	cfg := s.config
	if c := chooseCipher(s.Ciphers, client); c != nil {
		cfg = s.configs[c[0]]
	}
	gate := newReadGate(pc, readAhead)
	conn, chans, reqs, err := ssh.NewServerConn(gate, s.connConfig(ctx, cfg))
	if err != nil {
		s.Logger.Debug("ssh handshake failed", "ip", ip, "error", err)
		return
	}
	defer conn.Close()
	nc.SetDeadline(time.Time{})
	caller, _ := conn.Permissions.ExtraData[callerKey].(*pigp.Caller)
	if caller == nil {
		s.Logger.Error("authenticated connection without caller")
		return
	}
	authDone = true
	if !s.authenticated(nc, caller) {
		// Logins that raced past the check of the auth callbacks.
		s.Logger.Warn("ssh session refused: account at its session limit", "login", caller.Login, "ip", ip)
		return
	}
	defer s.sessionClosed(caller)
	caller.Session = fmt.Sprintf("ssh-%x", conn.SessionID()[:8])
	if s.SessionEnded != nil {
		defer s.SessionEnded(caller)
	}
	log := s.Logger.With("login", caller.Login, "ip", caller.RemoteIP, "session", fmt.Sprintf("%x", conn.SessionID()[:6]))
	cipher := ""
	if am, ok := conn.Conn.(ssh.AlgorithmsConnMetadata); ok {
		cipher = am.Algorithms().Read.Cipher
	}
	log.Info("ssh session opened", "client", string(conn.ClientVersion()), "cipher", cipher)
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "seul le sous-système sftp est disponible")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			log.Warn("accept channel", "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleSession(ch, creqs, caller, gate, log)
		}()
	}
	wg.Wait()
	log.Info("ssh session closed")
}

// handleSession waits for the "sftp" subsystem request and refuses every
// other request (shell, exec, pty, env, …) at once.
func (s *Server) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request, caller *pigp.Caller, gate *readGate, log *slog.Logger) {
	defer ch.Close()
	started := false
	for req := range reqs {
		ok := false
		if req.Type == "subsystem" && !started && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp" {
			ok, started = true, true
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if !ok {
			log.Debug("session request refused", "type", req.Type)
			if req.Type == "exec" || req.Type == "shell" {
				ch.Stderr().Write([]byte("pigp : seul le sous-système sftp est disponible\r\n"))
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
				return
			}
			continue
		}
		go ssh.DiscardRequests(reqs)
		s.serveSFTP(ch, caller, gate, log)
		return
	}
}

func (s *Server) serveSFTP(ch ssh.Channel, caller *pigp.Caller, gate *readGate, log *slog.Logger) {
	if s.Metrics != nil {
		s.Metrics.SFTPSessionStarted()
		defer s.Metrics.SFTPSessionEnded()
	}
	fsys := s.NewFS(caller)
	defer fsys.Close()
	c := newSFTPConn(ch, s.Requests)
	if gate != nil {
		c.gate = gate
		gate.attach()
	}
	rs := newRequestServer(c, fsys.Handlers())
	err := rs.Serve()
	if gate != nil {
		// The session reads its channel no more: the gate must not
		// hold for it while the exit status below waits to go out
		// (during a key exchange, behind the client's kex messages).
		gate.detach()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		log.Debug("sftp session ended", "error", err)
	}
	// Like sftp-server, end with an exit status: OpenSSH's scp fails
	// (exit 1) without one. It must go before the channel is closed.
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	rs.Close()
}

// Close stops accepting connections, lets the open connections finish
// (logins under way, then their transfers) until ctx is done, then closes
// every connection that remains.
func (s *Server) Close(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.ln.Close()
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.Logger.Warn("shutdown timeout: closing the remaining sessions")
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// LoadOrCreateHostKeys returns the host keys kept in dir (ed25519 and ECDSA
// P-256), generating any missing one with mode 0600.
func LoadOrCreateHostKeys(dir string) ([]ssh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create host key directory: %w", err)
	}
	var out []ssh.Signer
	for _, k := range []struct {
		file string
		gen  func() (any, error)
	}{
		{"ssh_host_ed25519_key", func() (any, error) { _, priv, err := ed25519.GenerateKey(rand.Reader); return priv, err }},
		{"ssh_host_ecdsa_key", func() (any, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	} {
		path := filepath.Join(dir, k.file)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			b, err = createHostKey(path, k.gen)
		}
		if err != nil {
			return nil, fmt.Errorf("read host key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse host key %s: %w", path, err)
		}
		out = append(out, signer)
	}
	return out, nil
}

// createHostKey generates a key and publishes it at path atomically: it
// is written and fsynced under a temporary name, then linked to path, so
// that several nodes starting at once on one data directory all end up
// with the key of whichever linked first, never a partial file.
func createHostKey(path string, gen func() (any, error)) ([]byte, error) {
	priv, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "pigp host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	b := pem.EncodeToMemory(blk)
	f, err := os.CreateTemp(filepath.Dir(path), ".hostkey-*")
	if err != nil {
		return nil, fmt.Errorf("create host key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return os.ReadFile(path) // another node was first
	} else if err != nil {
		return nil, fmt.Errorf("create host key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return b, nil
}
