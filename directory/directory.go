// Package directory authenticates the administration's internal agents
// against its LDAP directory (OpenLDAP, Active Directory) and resolves what
// their groups let them do in pigp.
//
// Authentication is the classic search-then-bind: the service account
// searches exactly one entry for the login (escaped into user_filter), then
// the entry's DN is bound with the given password. An empty password is
// refused before anything is sent (an empty simple bind is an anonymous
// bind that succeeds on many servers). Groups grant SIRETs and roles: a
// group named cn=pigp-siret-<SIRET> grants that SIRET as an agent with no
// configuration; other groups are mapped in the database (`pigp ldap map`).
// No grant: refused like a wrong password.
//
// Connections are pooled, bound as the service account between uses, and
// re-dialled when the server went away, so a restarted directory is used
// again without restarting pigp. A directory that does not answer gives
// pigp.EDIRECTORY errors, never the refusal of a password.
package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/pigp/pigp"
)

// Causes of refusals, kept as the internal cause (Err) of the pigp.Error
// so that the audit trail can tell them apart (AuditDetail) while the user
// gets one answer.
var (
	ErrEmptyPassword   = errors.New("directory: empty password")
	ErrUnknownLogin    = errors.New("directory: no entry for this login")
	ErrAmbiguousLogin  = errors.New("directory: several entries for this login")
	ErrBadPassword     = errors.New("directory: password refused")
	ErrPasswordExpired = errors.New("directory: password expired or must be changed")
	ErrLoginShape      = errors.New("directory: login of a shape pigp accounts cannot have")
	ErrNoGrant         = errors.New("directory: no group grants a SIRET")
)

// msgBadCredentials is the one answer to every refusal, the same as for
// local accounts: it never tells whether the login exists.
const msgBadCredentials = "Identifiant ou mot de passe incorrect."

func refused(cause error) error {
	return &pigp.Error{Code: pigp.EUNAUTHORIZED, Message: msgBadCredentials, Err: cause}
}

func unavailable(cause error) error {
	return &pigp.Error{Code: pigp.EDIRECTORY, Message: pigp.MsgDirectoryUnavailable, Err: cause}
}

// AuditDetail returns the French reason of a directory refusal or failure
// for the audit trail (never shown to the user).
func AuditDetail(err error) string {
	switch {
	case err == nil:
		return ""
	case pigp.ErrorCode(err) == pigp.EDIRECTORY:
		return "annuaire injoignable"
	case errors.Is(err, ErrEmptyPassword):
		return "mot de passe vide"
	case errors.Is(err, ErrPasswordExpired):
		return "mot de passe de l'annuaire expiré ou à changer"
	case errors.Is(err, ErrNoGrant):
		return "aucun groupe de l'annuaire n'habilite ce compte"
	case errors.Is(err, ErrLoginShape):
		return "identifiant de l'annuaire hors du format pigp"
	case errors.Is(err, ErrAmbiguousLogin):
		return "plusieurs entrées de l'annuaire pour cet identifiant"
	}
	return "identifiant ou mot de passe incorrect"
}

// AuditDetail is the package's AuditDetail, as a method for the exchange's
// Directory interface.
func (c *Client) AuditDetail(err error) string { return AuditDetail(err) }

// Store is what the directory needs from the database.
type Store interface {
	// GroupMappingsFor returns the mappings of the groups with these
	// canonical keys (CanonicalDN).
	GroupMappingsFor(ctx context.Context, keys []string) ([]*pigp.GroupMapping, error)
	// FindOrganisation returns ENOTFOUND for an unknown SIRET.
	FindOrganisation(ctx context.Context, siret string) (*pigp.Organisation, error)
}

// Client talks to the directory. It is safe for concurrent use.
type Client struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	local  *regexp.Regexp
	tls    *tls.Config
	ldaps  bool
	idle   chan *conn
	slots  chan struct{}
	mu     sync.Mutex
	down   bool
	closed bool
	// Now is the clock (idle connections).
	Now func() time.Time
}

type conn struct {
	*ldap.Conn
	used  time.Time
	dirty bool // bound as an agent (or not bound): rebind before reuse
}

// New checks cfg and returns a client. It does not connect: a directory
// down at start-up must not keep pigp (and its local accounts) from
// starting; Check tells.
func New(cfg Config, store Store, logger *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	c := &Client{cfg: cfg, store: store, log: logger, local: regexp.MustCompile(cfg.LocalLogins), tls: t,
		ldaps: u.Scheme == "ldaps", idle: make(chan *conn, cfg.PoolSize), slots: make(chan struct{}, cfg.PoolSize),
		Now: time.Now}
	if !c.ldaps && !cfg.StartTLS {
		logger.Warn("directory connections are not encrypted (ldap:// with start_tls: false): passwords cross the network in clear", "url", cfg.URL)
	}
	return c, nil
}

// IsLocal reports whether login is a local account's (it matches the
// local_logins pattern, "-xt$" by default): such a login never goes to the
// directory, and any other one never falls back to a local password.
func (c *Client) IsLocal(login string) bool {
	return c.local.MatchString(strings.ToLower(login))
}

// Close closes the idle connections; connections in use are closed when
// released.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	for {
		select {
		case cn := <-c.idle:
			cn.Close()
			<-c.slots
		default:
			return nil
		}
	}
}

// Available reports whether the last exchange with the directory worked
// (true before the first one).
func (c *Client) Available() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down
}

// Check asks the directory for its base entry as the service account; an
// EDIRECTORY error says why it cannot be used (for /readyz "degraded").
func (c *Client) Check(ctx context.Context) error {
	return c.withConn(ctx, func(cn *conn) error {
		_, err := cn.Search(ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, c.timeLimit(), false, "(objectClass=*)", []string{"1.1"}, nil))
		if err != nil {
			return fmt.Errorf("read base %s: %w", c.cfg.BaseDN, err)
		}
		return nil
	})
}

// Authenticate checks an agent's login and password against the directory
// and returns the agent with the grants of its groups. Errors:
// EUNAUTHORIZED for every refusal (empty or wrong password, unknown or
// ambiguous login, no grant; the cause is kept for AuditDetail), EEXPIRED
// when the directory says the password expired or must be changed (only
// once the password was proved), EDIRECTORY when the directory does not
// answer, and the database's errors as they are.
func (c *Client) Authenticate(ctx context.Context, login, password string) (*pigp.DirectoryAccount, error) {
	if password == "" {
		return nil, refused(ErrEmptyPassword)
	}
	if login == "" || len(login) > 256 || len(password) > 1024 || !utf8.ValidString(login) ||
		strings.IndexFunc(login, unicode.IsControl) >= 0 {
		return nil, refused(ErrUnknownLogin)
	}
	if c.IsLocal(login) { // the caller routes; never send a local login's password to the directory
		return nil, refused(ErrUnknownLogin)
	}
	var acct *pigp.DirectoryAccount
	err := c.withConn(ctx, func(cn *conn) error {
		entry, err := c.findUser(cn, login)
		if err != nil {
			if pigp.ErrorCode(err) == pigp.EUNAUTHORIZED {
				c.decoyBind(cn, password)
			}
			return err
		}
		groups, err := c.groupsOf(cn, entry, login)
		if err != nil {
			return err
		}
		cn.dirty = true
		if err := cn.Bind(entry.DN, password); err != nil {
			return classifyBind(err)
		}
		acct = &pigp.DirectoryAccount{DN: entry.DN, Name: c.displayName(entry, login), Email: c.mail(entry), Groups: groups}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if acct.Login, err = pigp.DirectoryLogin(login); err != nil {
		return nil, refused(ErrLoginShape)
	}
	if acct.Grants, err = c.Grants(ctx, acct.Groups); err != nil {
		return nil, err
	}
	if len(acct.Grants) == 0 {
		return nil, refused(ErrNoGrant)
	}
	return acct, nil
}

// Grants returns what the groups (DNs) grant: cn=pigp-siret-<SIRET> groups
// grant their SIRET as agent when the organisation exists; the database's
// mappings grant their SIRET and role.
func (c *Client) Grants(ctx context.Context, groups []string) ([]pigp.Grant, error) {
	var keys, auto []string
	for _, g := range groups {
		dn, err := ldap.ParseDN(g)
		if err != nil || len(dn.RDNs) == 0 {
			c.log.Debug("directory group DN unreadable", "dn", g, "error", err)
			continue
		}
		keys = append(keys, canonical(dn))
		if s, ok := autoSIRET(dn); ok {
			auto = append(auto, s)
		}
	}
	var grants []pigp.Grant
	if len(keys) > 0 {
		ms, err := c.store.GroupMappingsFor(ctx, keys)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			grants = append(grants, pigp.Grant{SIRET: m.SIRET, Role: m.Role})
		}
	}
	for _, s := range auto {
		if _, err := c.store.FindOrganisation(ctx, s); err != nil {
			if pigp.ErrorCode(err) == pigp.ENOTFOUND {
				c.log.Warn("directory group names an unknown organisation: create it with `pigp org add`", "siret", s)
				continue
			}
			return nil, err
		}
		grants = append(grants, pigp.Grant{SIRET: s, Role: pigp.RoleAgent})
	}
	return pigp.NormalizeGrants(grants), nil
}

// CanonicalDN returns the form of a group DN that mappings are keyed by:
// attribute types and values in lower case, values escaped (RFC 4514),
// no spaces between components, multi-valued RDNs sorted. Two spellings of
// one DN give the same key.
func CanonicalDN(s string) (string, error) {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return "", pigp.WrapError(pigp.EINVALID, fmt.Sprintf("DN %q illisible", s), err)
	}
	if len(dn.RDNs) == 0 {
		return "", pigp.Errorf(pigp.EINVALID, "DN vide")
	}
	return canonical(dn), nil
}

func canonical(dn *ldap.DN) string {
	rdns := make([]string, len(dn.RDNs))
	for i, r := range dn.RDNs {
		parts := make([]string, len(r.Attributes))
		for j, a := range r.Attributes {
			parts[j] = strings.ToLower(strings.TrimSpace(a.Type)) + "=" + ldap.EscapeDN(strings.ToLower(a.Value))
		}
		sort.Strings(parts)
		rdns[i] = strings.Join(parts, "+")
	}
	return strings.Join(rdns, ",")
}

// AutoGroupPrefix starts the common name of the groups that grant a SIRET
// with no configuration: cn=pigp-siret-<SIRET>,….
const AutoGroupPrefix = "pigp-siret-"

func autoSIRET(dn *ldap.DN) (string, bool) {
	first := dn.RDNs[0]
	if len(first.Attributes) != 1 || !strings.EqualFold(first.Attributes[0].Type, "cn") {
		return "", false
	}
	v := first.Attributes[0].Value
	if len(v) <= len(AutoGroupPrefix) || !strings.EqualFold(v[:len(AutoGroupPrefix)], AutoGroupPrefix) {
		return "", false
	}
	s := v[len(AutoGroupPrefix):]
	if pigp.ValidateSIRET(s) != nil {
		return "", false
	}
	return s, true
}

// findUser searches exactly one entry for login.
func (c *Client) findUser(cn *conn, login string) (*ldap.Entry, error) {
	attrs := []string{c.cfg.NameAttribute, "cn", c.cfg.MailAttribute}
	if c.cfg.GroupAttribute != "" {
		attrs = append(attrs, c.cfg.GroupAttribute)
	}
	res, err := cn.Search(ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, c.timeLimit(), false, c.cfg.userFilter(login), attrs, nil))
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return nil, refused(ErrAmbiguousLogin)
	case err != nil:
		return nil, fmt.Errorf("search agent: %w", err)
	case len(res.Entries) == 0:
		return nil, refused(ErrUnknownLogin)
	case len(res.Entries) > 1:
		return nil, refused(ErrAmbiguousLogin)
	}
	return res.Entries[0], nil
}

// decoyDN is bound when no entry matched, so that an unknown login costs
// the directory round trip of a known one with a wrong password.
const decoyRDN = "cn=pigp-no-such-entry"

func (c *Client) decoyBind(cn *conn, password string) {
	cn.dirty = true
	cn.Bind(decoyRDN+","+c.cfg.BaseDN, password) // always refused; the result does not matter
}

// groupsOf returns the DNs of the agent's groups.
func (c *Client) groupsOf(cn *conn, entry *ldap.Entry, login string) ([]string, error) {
	if c.cfg.GroupAttribute != "" {
		return entry.GetEqualFoldAttributeValues(c.cfg.GroupAttribute), nil
	}
	base := c.cfg.GroupBaseDN
	if base == "" {
		base = c.cfg.BaseDN
	}
	filter := expand(c.cfg.GroupFilter, "dn", ldap.EscapeFilter(entry.DN), "login", ldap.EscapeFilter(login))
	res, err := cn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1000, c.timeLimit(), false, filter, []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("search groups: %w", err)
	}
	var out []string
	for _, e := range res.Entries {
		out = append(out, e.DN)
	}
	return out, nil
}

func (c *Client) displayName(e *ldap.Entry, login string) string {
	for _, a := range []string{c.cfg.NameAttribute, "cn"} {
		v := strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, e.GetEqualFoldAttributeValue(a)))
		if v != "" {
			if r := []rune(v); len(r) > 200 {
				v = string(r[:200])
			}
			return v
		}
	}
	return login
}

func (c *Client) mail(e *ldap.Entry) string {
	v := strings.TrimSpace(e.GetEqualFoldAttributeValue(c.cfg.MailAttribute))
	if a, err := mail.ParseAddress(v); err != nil || a.Address != v || len(v) > 254 {
		return ""
	}
	return v
}

// adExpired matches Active Directory's bind diagnostics for a password
// that expired (data 532) or must be changed at next logon (data 773).
var adExpired = regexp.MustCompile(`\bdata (532|773)\b`)

// classifyBind turns the agent's bind error into a refusal, an expiry or
// (returned as is) a directory failure.
func classifyBind(err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return err
	}
	switch le.ResultCode {
	case ldap.LDAPResultInvalidCredentials:
		if le.Err != nil && adExpired.MatchString(le.Err.Error()) {
			return &pigp.Error{Code: pigp.EEXPIRED, Message: pigp.MsgDirectoryPasswordExpired,
				Err: fmt.Errorf("%w: %v", ErrPasswordExpired, err)}
		}
		return refused(ErrBadPassword)
	}
	if failure(le.ResultCode) {
		return err
	}
	return refused(fmt.Errorf("%w: %v", ErrBadPassword, err))
}

// failure reports whether an LDAP result code means the directory cannot
// be used (down, busy, refusing the connection's security), not that the
// agent was refused.
func failure(code uint16) bool {
	switch code {
	case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultTimeout, ldap.LDAPResultConnectError,
		ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultTimeLimitExceeded,
		ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultOther:
		return true
	}
	return false
}

// connectionLost reports whether err means the connection is gone (a new
// one may work).
func connectionLost(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError)
}

func (c *Client) timeLimit() int { return max(1, int(c.cfg.Timeout/time.Second)) }

// withConn runs fn on a pooled connection bound as the service account.
// fn returns a *pigp.Error for an answer about the agent, any other error
// for a failure of the directory. A pooled connection that the server
// dropped (restart, idle cut) is replaced once by a new one.
func (c *Client) withConn(ctx context.Context, fn func(*conn) error) error {
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.acquire(ctx)
		if err != nil {
			c.markDown(err)
			return unavailable(err)
		}
		stop := context.AfterFunc(ctx, func() { cn.Close() })
		err = fn(cn)
		canceled := !stop()
		_, answered := err.(*pigp.Error)
		broken := canceled || (err != nil && !answered && (connectionLost(err) || ldap.IsErrorWithCode(err, ldap.LDAPResultTimeout)))
		if !broken && cn.dirty {
			if rerr := c.bindService(cn); rerr != nil {
				c.log.Warn("directory: rebinding the service account failed; connection dropped", "error", rerr)
				broken = true
			}
		}
		c.release(cn, broken)
		if err == nil || answered {
			c.markUp()
			return err
		}
		if canceled {
			return unavailable(fmt.Errorf("%w (%v)", ctx.Err(), err))
		}
		if reused && attempt == 0 && connectionLost(err) {
			continue
		}
		c.markDown(err)
		return unavailable(err)
	}
}

// acquire returns an idle connection (reused = true) or a new one within
// the pool's bound, waiting at most Timeout for one to be free.
func (c *Client) acquire(ctx context.Context) (cn *conn, reused bool, err error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, false, errors.New("directory client closed")
	}
	wait := time.NewTimer(c.cfg.Timeout)
	defer wait.Stop()
	for {
		select { // an idle connection first
		case cn := <-c.idle:
			if c.stale(cn) {
				continue
			}
			return cn, true, nil
		default:
		}
		select {
		case cn := <-c.idle:
			if c.stale(cn) {
				continue
			}
			return cn, true, nil
		case c.slots <- struct{}{}:
			cn, err := c.dial(ctx)
			if err != nil {
				<-c.slots
				return nil, false, err
			}
			return cn, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-wait.C:
			return nil, false, fmt.Errorf("all %d directory connections busy for %s", c.cfg.PoolSize, c.cfg.Timeout)
		}
	}
}

// stale closes and forgets an idle connection that is closed or unused for
// too long.
func (c *Client) stale(cn *conn) bool {
	if !cn.IsClosing() && c.Now().Sub(cn.used) <= c.cfg.IdleTimeout {
		return false
	}
	cn.Close()
	<-c.slots
	return true
}

func (c *Client) release(cn *conn, broken bool) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if broken || closed || cn.IsClosing() {
		cn.Close()
		<-c.slots
		return
	}
	cn.used = c.Now()
	c.idle <- cn
}

// dial opens a connection: TCP (and TLS for ldaps://) within DialTimeout,
// StartTLS unless disabled, then the service bind.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	l, err := ldap.DialURL(c.cfg.URL, ldap.DialWithDialer(&net.Dialer{Timeout: c.cfg.DialTimeout}),
		ldap.DialWithTLSConfig(c.tls))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", c.cfg.URL, err)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	l.SetTimeout(c.cfg.Timeout)
	if !c.ldaps && c.cfg.StartTLS {
		if err := l.StartTLS(c.tls); err != nil {
			l.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", c.cfg.URL, err)
		}
	}
	cn := &conn{Conn: l, used: c.Now()}
	if err := c.bindService(cn); err != nil {
		l.Close()
		return nil, err
	}
	return cn, nil
}

func (c *Client) bindService(cn *conn) error {
	pw, err := c.cfg.bindPassword()
	if err != nil {
		return err
	}
	if err := cn.Bind(c.cfg.BindDN, pw); err != nil {
		return fmt.Errorf("service account bind (%s): %w", c.cfg.BindDN, err)
	}
	cn.dirty = false
	return nil
}

func (c *Client) markDown(err error) {
	c.mu.Lock()
	was := c.down
	c.down = true
	c.mu.Unlock()
	if !was {
		c.log.Warn("directory unavailable: directory logins refused until it answers again", "url", c.cfg.URL, "error", err)
	} else {
		c.log.Debug("directory still unavailable", "error", err)
	}
}

func (c *Client) markUp() {
	c.mu.Lock()
	was := c.down
	c.down = false
	c.mu.Unlock()
	if was {
		c.log.Info("directory available again", "url", c.cfg.URL)
	}
}
