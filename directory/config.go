package directory

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config is the directory's configuration (the `ldap:` section).
type Config struct {
	// URL is ldaps://host[:636] or ldap://host[:389].
	URL string
	// StartTLS upgrades ldap:// connections before anything is sent; only
	// an explicit `start_tls: false` sends credentials in clear.
	StartTLS bool
	// CAFile is a PEM bundle of the CAs trusted for the directory's
	// certificate (default: the system's).
	CAFile string
	// BindDN and BindPassword (or BindPasswordFile, read at every new
	// connection so that a rotated password needs no restart) are the
	// service account that searches the directory.
	BindDN           string
	BindPassword     string
	BindPasswordFile string
	// BaseDN is where agents are searched (whole subtree).
	BaseDN string
	// UserFilter finds an agent's entry; {login} is replaced by the login,
	// escaped (RFC 4515).
	UserFilter string
	// NameAttribute and MailAttribute fill the shadow row.
	NameAttribute string
	MailAttribute string
	// GroupAttribute lists an entry's groups (memberOf). When empty, groups
	// are searched under GroupBaseDN (default BaseDN) with GroupFilter, in
	// which {dn} is the agent's DN and {login} the login, both escaped.
	GroupAttribute string
	GroupBaseDN    string
	GroupFilter    string
	// LocalLogins is the pattern of local logins (external users); they
	// never go to the directory. Matched against the lower-cased login.
	LocalLogins string
	// DialTimeout bounds connecting (TCP and TLS); Timeout bounds each
	// request.
	DialTimeout time.Duration
	Timeout     time.Duration
	// PoolSize bounds the open connections; IdleTimeout closes a connection
	// unused for that long instead of reusing it.
	PoolSize    int
	IdleTimeout time.Duration
}

// Defaults of the optional settings.
const (
	DefaultUserFilter     = "(&(objectClass=person)(uid={login}))"
	DefaultNameAttribute  = "displayName"
	DefaultMailAttribute  = "mail"
	DefaultGroupAttribute = "memberOf"
	DefaultGroupFilter    = "(&(objectClass=groupOfNames)(member={dn}))"
	DefaultLocalLogins    = "-xt$"
	DefaultDialTimeout    = 5 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultPoolSize       = 4
	DefaultIdleTimeout    = 5 * time.Minute
)

// DefaultConfig returns the defaults; URL, BindDN, its password and BaseDN
// have none.
func DefaultConfig() Config {
	return Config{
		StartTLS: true, UserFilter: DefaultUserFilter, NameAttribute: DefaultNameAttribute,
		MailAttribute: DefaultMailAttribute, GroupAttribute: DefaultGroupAttribute, GroupFilter: DefaultGroupFilter,
		LocalLogins: DefaultLocalLogins, DialTimeout: DefaultDialTimeout, Timeout: DefaultTimeout,
		PoolSize: DefaultPoolSize, IdleTimeout: DefaultIdleTimeout,
	}
}

// Validate checks the configuration without connecting; field names are
// the YAML keys.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" {
		return fmt.Errorf("ldap.url %q: must be ldaps://host[:port] or ldap://host[:port]", c.URL)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("ldap.url %q: no path, query or user: the DNs are separate settings", c.URL)
	}
	if strings.TrimSpace(c.BindDN) == "" {
		return errors.New("ldap.bind_dn: required (the service account that searches the directory)")
	}
	if _, err := ldap.ParseDN(c.BindDN); err != nil {
		return fmt.Errorf("ldap.bind_dn %q: %v", c.BindDN, err)
	}
	if (c.BindPassword == "") == (c.BindPasswordFile == "") {
		return errors.New("ldap.bind_password or ldap.bind_password_file: exactly one is required")
	}
	if err := checkDN("ldap.base_dn", c.BaseDN); err != nil {
		return err
	}
	if !strings.Contains(c.UserFilter, "{login}") {
		return fmt.Errorf("ldap.user_filter %q: must contain {login}", c.UserFilter)
	}
	if _, err := ldap.CompileFilter(expand(c.UserFilter, "login", "x")); err != nil {
		return fmt.Errorf("ldap.user_filter %q: %v", c.UserFilter, err)
	}
	if c.GroupAttribute == "" {
		if !strings.Contains(c.GroupFilter, "{dn}") && !strings.Contains(c.GroupFilter, "{login}") {
			return fmt.Errorf("ldap.group_filter %q: must contain {dn} or {login} (or set ldap.group_attribute)", c.GroupFilter)
		}
		if _, err := ldap.CompileFilter(expand(c.GroupFilter, "dn", "cn=x", "login", "x")); err != nil {
			return fmt.Errorf("ldap.group_filter %q: %v", c.GroupFilter, err)
		}
		if c.GroupBaseDN != "" {
			if err := checkDN("ldap.group_base_dn", c.GroupBaseDN); err != nil {
				return err
			}
		}
	}
	if _, err := regexp.Compile(c.LocalLogins); err != nil || c.LocalLogins == "" {
		return fmt.Errorf("ldap.local_logins %q: must be a regular expression", c.LocalLogins)
	}
	if c.DialTimeout <= 0 || c.Timeout <= 0 || c.IdleTimeout <= 0 {
		return errors.New("ldap.dial_timeout, ldap.timeout and ldap.idle_timeout: must be positive")
	}
	if c.PoolSize < 1 || c.PoolSize > 256 {
		return fmt.Errorf("ldap.pool_size %d: must be between 1 and 256", c.PoolSize)
	}
	if c.CAFile != "" {
		if _, err := c.caPool(); err != nil {
			return err
		}
	}
	return nil
}

func checkDN(field, dn string) error {
	if strings.TrimSpace(dn) == "" {
		return fmt.Errorf("%s: required", field)
	}
	if _, err := ldap.ParseDN(dn); err != nil {
		return fmt.Errorf("%s %q: %v", field, dn, err)
	}
	return nil
}

func (c *Config) caPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ldap.ca_file: %v", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ldap.ca_file %s: no PEM certificate", c.CAFile)
	}
	return p, nil
}

// tlsConfig returns the TLS settings of the connections: the configured
// CAs (or the system's), the URL's host name checked, TLS 1.2 at least.
func (c *Config) tlsConfig() (*tls.Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, err
	}
	t := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		if t.RootCAs, err = c.caPool(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// bindPassword returns the service account's password.
func (c *Config) bindPassword() (string, error) {
	if c.BindPasswordFile == "" {
		return c.BindPassword, nil
	}
	b, err := os.ReadFile(c.BindPasswordFile)
	if err != nil {
		return "", fmt.Errorf("ldap.bind_password_file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("ldap.bind_password_file %s is empty", c.BindPasswordFile)
	}
	return p, nil
}

// expand replaces {name} by value for each name, value pair; values must
// already be escaped for where they go.
// The replacement is one pass: a value is never expanded again.
func expand(s string, pairs ...string) string {
	var r []string
	for i := 0; i+1 < len(pairs); i += 2 {
		r = append(r, "{"+pairs[i]+"}", pairs[i+1])
	}
	return strings.NewReplacer(r...).Replace(s)
}

// UserFilter returns the search filter for login, escaped.
func (c *Config) userFilter(login string) string {
	return expand(c.UserFilter, "login", ldap.EscapeFilter(login))
}
