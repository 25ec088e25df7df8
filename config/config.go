// Package config holds pigp's settings: defaults, a YAML file, then
// environment variables (PIGP_*), each layer overriding the previous one.
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/directory"
)

// Config is the whole configuration. Packages other than cmd/pigp never see
// it; they receive plain fields.
type Config struct {
	// DataDir holds the content store, the host keys and the default SQLite database.
	DataDir string `yaml:"data_dir"`
	// DatabaseURL is "" (SQLite file in DataDir), "sqlite:///path/file.db" or "postgres://…".
	DatabaseURL string `yaml:"database_url"`
	// DatabasePasswordFile holds the password of a postgres:// DatabaseURL
	// that has none (a Docker secret, a systemd credential).
	DatabasePasswordFile string `yaml:"database_password_file"`
	// SFTPListen is the SSH/SFTP listen address.
	SFTPListen string `yaml:"sftp_listen"`
	// HTTPListen is the portal's listen address ("" or "off" disables it;
	// Load turns "off" into "").
	HTTPListen string `yaml:"http_listen"`
	// MetricsListen is the Prometheus metrics listen address, apart from
	// the portal ("" or "off", the default, disables it).
	MetricsListen string `yaml:"metrics_listen"`
	// DebugListen serves net/http/pprof ("" or "off", the default,
	// disables it); Validate accepts only a loopback address.
	DebugListen string `yaml:"debug_listen"`
	// TLSCert and TLSKey are the portal's certificate and key (PEM files);
	// without them the portal runs in plain HTTP and says so in the log.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SessionIdle ends a portal session after this much inactivity.
	SessionIdle Duration `yaml:"session_idle"`
	// SessionLifetime ends a portal session this long after login,
	// however active.
	SessionLifetime Duration `yaml:"session_lifetime"`
	// HTTPTrustedProxies are the reverse proxies (CIDR) whose
	// X-Forwarded-For, Forwarded and X-Forwarded-Proto the portal believes.
	HTTPTrustedProxies []string `yaml:"http_trusted_proxies"`
	// ProxyProtocol accepts the PROXY protocol on the SFTP port from
	// trusted balancers.
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol"`
	// MaxUploadSize bounds one deposit, in bytes.
	MaxUploadSize Size `yaml:"max_upload_size"`
	// Retention is how long a response stays in /retrait.
	Retention Duration `yaml:"retention"`
	// PasswordValidityMonths is how long a password stays valid.
	PasswordValidityMonths int `yaml:"password_validity_months"`
	// HistoryMonths is the window of the history listings.
	HistoryMonths int `yaml:"history_months"`
	// ShutdownTimeout bounds how long transfers may go on after SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long /readyz answers 503 after SIGTERM before the
	// node stops accepting connections (a balancer's health checks notice
	// meanwhile).
	DrainDelay Duration `yaml:"drain_delay"`
	// ProcessingSchedule is when deposits are processed (cron with seconds).
	ProcessingSchedule string `yaml:"processing_schedule"`
	// ProcessingStaleAfter is how long a deposit may stay EN_COURS before
	// another run takes it over (its processor crashed).
	ProcessingStaleAfter Duration `yaml:"processing_stale_after"`
	// ExpirySchedule, PasswordSchedule, NotifySchedule and
	// HousekeepingSchedule are the other jobs' cron schedules (with seconds).
	ExpirySchedule       string `yaml:"expiry_schedule"`
	PasswordSchedule     string `yaml:"password_schedule"`
	NotifySchedule       string `yaml:"notify_schedule"`
	HousekeepingSchedule string `yaml:"housekeeping_schedule"`
	// PasswordReminderDays lists how many days before expiry reminders go out.
	PasswordReminderDays []int `yaml:"password_reminder_days"`
	// SMTP is the mail server of notifications; without a host they are
	// logged and recorded as not sent.
	SMTP SMTP `yaml:"smtp"`
	// PortalURL is the portal's public address, named in e-mails.
	PortalURL string `yaml:"portal_url"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	// LoginGraceTime closes SSH connections not authenticated in time.
	LoginGraceTime Duration `yaml:"login_grace_time"`
	// MaxAuthTries bounds the authentication attempts of one SSH connection.
	MaxAuthTries int `yaml:"max_auth_tries"`
	// MaxConnections and MaxConnectionsPerIP bound the open SSH
	// connections, in total and per client address. The per-address
	// default lets one département's batch tool run 50 transfers at once
	// (its own connection each), with room for a second tool behind the
	// same NAT address.
	MaxConnections      int `yaml:"max_connections"`
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// SSH holds the SSH algorithm settings.
	SSH SSH `yaml:"ssh"`
	// Throttle holds the brute-force thresholds (SSH and portal).
	Throttle Throttle `yaml:"throttle"`
	// Auth bounds the work and memory that authentication may take.
	Auth Auth `yaml:"auth"`
	// Limits bounds what one session, one account and the process hold.
	Limits Limits `yaml:"limits"`
	// Audit holds the audit trail's flood control.
	Audit Audit `yaml:"audit"`
	// MemoryLimit is the Go runtime's soft memory limit (like GOMEMLIMIT);
	// 0 leaves the runtime's default (none, or GOMEMLIMIT from the
	// environment).
	MemoryLimit Size `yaml:"memory_limit"`
	// LDAP is the directory of the administration's internal agents;
	// without a URL there is none and every login is local.
	LDAP LDAP `yaml:"ldap"`
	// AuditKeyFile holds the audit chain's secret key (hex), created with
	// mode 0600 at first start; "" means DATA_DIR/audit.key.
	AuditKeyFile string `yaml:"audit_key_file"`
	// AuditKey is the key itself (hex), from PIGP_AUDIT_KEY only; it wins
	// over the file.
	AuditKey string `yaml:"-"`
	// AuditCheckpointFile receives the signed checkpoints of the audit
	// chain; "" means DATA_DIR/audit-checkpoints.log.
	AuditCheckpointFile string `yaml:"audit_checkpoint_file"`
	// AuditCheckpointSchedule is when a checkpoint is written (cron with
	// seconds).
	AuditCheckpointSchedule string `yaml:"audit_checkpoint_schedule"`
	// MinFreeSpace is the free space of the content store below which new
	// uploads are refused and /readyz fails: a size or a percentage.
	MinFreeSpace Space `yaml:"min_free_space"`
	// DuplicateWindow is how long a re-upload of the same file (account,
	// name, SHA-256) is answered as a retry of the first deposit (0: off).
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// Campaigns are the campaign windows of the file (E008); the database
	// holds those set by `pigp campaign set` for the other years. Without
	// any window, every campaign is open.
	Campaigns []Campaign `yaml:"campaigns"`
	// Storage says where committed contents live: DATA_DIR/store (fs, the
	// default) or an S3-compatible bucket (s3).
	Storage Storage `yaml:"storage"`

	// dbPassword is the content of DatabasePasswordFile, read by Load.
	dbPassword string
}

// Space is a free-space threshold read as a size ("1GiB", "500MB") or a
// percentage of the filesystem ("5%").
type Space struct {
	Bytes   int64
	Percent float64
}

// ParseSpace parses a size or a percentage.
func ParseSpace(s string) (Space, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 {
			return Space{}, fmt.Errorf("invalid percentage %q (0 to 99%%)", s)
		}
		return Space{Percent: v}, nil
	}
	n, err := ParseSize(t)
	if err != nil {
		return Space{}, err
	}
	return Space{Bytes: n}, nil
}

// String writes the threshold back ("1073741824" or "5%").
func (sp Space) String() string {
	if sp.Percent > 0 {
		return strconv.FormatFloat(sp.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(sp.Bytes, 10)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (sp *Space) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSpace(n.Value)
	if err != nil {
		return err
	}
	*sp = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (sp Space) MarshalYAML() (any, error) { return sp.String(), nil }

// AuditKeyPath returns the audit key file's path.
func (c Config) AuditKeyPath() string {
	if c.AuditKeyFile != "" {
		return c.AuditKeyFile
	}
	return filepath.Join(c.DataDir, "audit.key")
}

// AuditCheckpointPath returns the checkpoint file's path.
func (c Config) AuditCheckpointPath() string {
	if c.AuditCheckpointFile != "" {
		return c.AuditCheckpointFile
	}
	return filepath.Join(c.DataDir, "audit-checkpoints.log")
}

// Auth bounds authentication. Each password check (argon2id, one thread)
// holds 19 MiB while it runs: at most MaxConcurrentHashes run at once
// (default: the number of CPUs, which they keep busy; the process then
// peaks near 2 × 19 MiB per check with the garbage collector's slack),
// HashQueue more wait, each at most HashWait; past that a login is
// refused like a wrong password, without checking it.
type Auth struct {
	MaxConcurrentHashes int      `yaml:"max_concurrent_hashes"`
	HashQueue           int      `yaml:"hash_queue"`
	HashWait            Duration `yaml:"hash_wait"`
	// ReleaseMemory returns the hashing memory to the system once the
	// checks stop (runtime/debug.FreeOSMemory a second after the last one).
	ReleaseMemory bool `yaml:"release_memory"`
	// MaxUnauthenticatedPerIP bounds the SSH connections of one address
	// that have not authenticated yet.
	MaxUnauthenticatedPerIP int `yaml:"max_unauthenticated_per_ip"`
}

// Limits bounds what clients hold open.
type Limits struct {
	// MaxOpenHandles bounds the open files and directories of one SFTP session.
	MaxOpenHandles int `yaml:"max_open_handles"`
	// MaxUploadsPerAccount bounds the uploads an account has in progress
	// (SFTP and portal, staged uploads waiting for a resume included).
	MaxUploadsPerAccount int `yaml:"max_uploads_per_account"`
	// MaxSessionsPerAccount bounds the SSH connections of one account, and
	// the portal sessions (the oldest one ends when a login exceeds it).
	MaxSessionsPerAccount int `yaml:"max_sessions_per_account"`
	// MaxOpenFiles bounds the descriptors held by uploads and downloads of
	// all clients; 0 derives it from RLIMIT_NOFILE (raised to its hard
	// limit at start) minus max_connections minus ReservedDescriptors.
	MaxOpenFiles int `yaml:"max_open_files"`
	// ReservedDescriptors are kept for the portal, the database, the
	// listeners and new logins when MaxOpenFiles is derived.
	ReservedDescriptors int `yaml:"reserved_descriptors"`
	// RequestsInFlight bounds the SFTP requests in flight of all sessions
	// together beyond each session's first (which never waits), and so the
	// memory of their data (256 KiB each); one session has at most 8.
	RequestsInFlight int `yaml:"requests_in_flight"`
	// ReleaseMemory returns the memory of a burst of transfers to the
	// system once no SFTP request has been in flight for a second
	// (runtime/debug.FreeOSMemory).
	ReleaseMemory bool `yaml:"release_memory"`
}

// Audit holds the flood control of the audit trail: within one session
// (or, before login, one client address) the first MaxDetailedRefusals
// refusals of each kind are recorded one by one; the others are counted
// and recorded as one summary row at the end of the session, or after
// RefusalSummaryAfter without a refusal.
type Audit struct {
	MaxDetailedRefusals int      `yaml:"max_detailed_refusals"`
	RefusalSummaryAfter Duration `yaml:"refusal_summary_after"`
}

// ProxyProtocol holds the settings of the PROXY protocol (v1 and v2) on
// the SFTP port.
type ProxyProtocol struct {
	// Trusted lists the balancers (CIDR or address) whose connections must
	// start with a PROXY header; a header from any other address is refused.
	Trusted []string `yaml:"trusted"`
	// HeaderTimeout bounds the wait for a trusted balancer's header.
	HeaderTimeout Duration `yaml:"header_timeout"`
}

// ParsePrefixes reads a list of CIDRs or single addresses (a /32 or /128).
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// LDAP holds the directory settings (see the directory package).
type LDAP struct {
	// URL is ldaps://host or ldap://host ("": no directory).
	URL string `yaml:"url"`
	// StartTLS upgrades ldap:// connections; only false sends in clear.
	StartTLS bool `yaml:"start_tls"`
	// CAFile holds the PEM CAs trusted for the directory (default: the system's).
	CAFile string `yaml:"ca_file"`
	// BindDN and BindPassword or BindPasswordFile: the service account.
	BindDN           string `yaml:"bind_dn"`
	BindPassword     string `yaml:"bind_password"`
	BindPasswordFile string `yaml:"bind_password_file"`
	// BaseDN is searched for agents with UserFilter ({login} is escaped).
	BaseDN        string `yaml:"base_dn"`
	UserFilter    string `yaml:"user_filter"`
	NameAttribute string `yaml:"name_attribute"`
	MailAttribute string `yaml:"mail_attribute"`
	// GroupAttribute (memberOf) lists an entry's groups; set it to "" to
	// search groups under GroupBaseDN with GroupFilter ({dn}, {login}).
	GroupAttribute string `yaml:"group_attribute"`
	GroupBaseDN    string `yaml:"group_base_dn"`
	GroupFilter    string `yaml:"group_filter"`
	// LocalLogins is the pattern of local logins, never sent to the directory.
	LocalLogins string   `yaml:"local_logins"`
	DialTimeout Duration `yaml:"dial_timeout"`
	Timeout     Duration `yaml:"timeout"`
	PoolSize    int      `yaml:"pool_size"`
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// Enabled reports whether a directory is configured.
func (l LDAP) Enabled() bool { return l.URL != "" }

// Directory returns the directory package's configuration.
func (l LDAP) Directory() directory.Config {
	return directory.Config{
		URL: l.URL, StartTLS: l.StartTLS, CAFile: l.CAFile, BindDN: l.BindDN, BindPassword: l.BindPassword,
		BindPasswordFile: l.BindPasswordFile, BaseDN: l.BaseDN, UserFilter: l.UserFilter,
		NameAttribute: l.NameAttribute, MailAttribute: l.MailAttribute, GroupAttribute: l.GroupAttribute,
		GroupBaseDN: l.GroupBaseDN, GroupFilter: l.GroupFilter, LocalLogins: l.LocalLogins,
		DialTimeout: l.DialTimeout.Std(), Timeout: l.Timeout.Std(), PoolSize: l.PoolSize, IdleTimeout: l.IdleTimeout.Std(),
	}
}

func defaultLDAP() LDAP {
	d := directory.DefaultConfig()
	return LDAP{
		StartTLS: d.StartTLS, UserFilter: d.UserFilter, NameAttribute: d.NameAttribute, MailAttribute: d.MailAttribute,
		GroupAttribute: d.GroupAttribute, GroupFilter: d.GroupFilter, LocalLogins: d.LocalLogins,
		DialTimeout: Duration(d.DialTimeout), Timeout: Duration(d.Timeout), PoolSize: d.PoolSize, IdleTimeout: Duration(d.IdleTimeout),
	}
}

// Campaign is one campaign window: call files of Year are accepted from
// Opens to Closes, both days included (Paris time).
type Campaign struct {
	Year   int `yaml:"year"`
	Opens  Day `yaml:"opens"`
	Closes Day `yaml:"closes"`
}

// Day is a calendar day written 2006-01-02, kept as written (YAML would
// otherwise read it as an instant in UTC).
type Day string

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Day) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a day is written 2006-01-02", n.Line)
	}
	*d = Day(n.Value)
	return nil
}

// SSH holds the SSH algorithm settings.
type SSH struct {
	// Ciphers, when set, are offered to every client in this order; unset,
	// the offer depends on the CPU and the client (server.CipherOffer).
	Ciphers []string `yaml:"ciphers"`
}

// sshCiphers are the ciphers ssh.ciphers may name: the secure ones
// x/crypto implements (no CBC, no RC4).
var sshCiphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

// Throttle holds the brute-force thresholds shared by SSH and the portal
// (see docs/securite.md). Failures are counted over Forget.
type Throttle struct {
	// PairFreeFailures failures of one login from one address are free;
	// each further one blocks the pair for BaseDelay, doubling up to MaxDelay.
	PairFreeFailures int `yaml:"pair_free_failures"`
	// IPFreeFailures failures from one address (any login) are free; then
	// the address is blocked the same way.
	IPFreeFailures int `yaml:"ip_free_failures"`
	// IPBanAfter failures from one address ban it for BanTime on every node.
	IPBanAfter int      `yaml:"ip_ban_after"`
	BanTime    Duration `yaml:"ban_time"`
	BaseDelay  Duration `yaml:"base_delay"`
	MaxDelay   Duration `yaml:"max_delay"`
	// AccountSlowAfter failures on one login (any address) make each
	// further failed answer wait, from BaseTarpit doubling up to MaxTarpit.
	// An account is never locked by others' failures.
	AccountSlowAfter int      `yaml:"account_slow_after"`
	BaseTarpit       Duration `yaml:"base_tarpit"`
	MaxTarpit        Duration `yaml:"max_tarpit"`
	// Forget resets a counter after this much quiet.
	Forget Duration `yaml:"forget"`
}

// SMTP holds the mail server settings.
type SMTP struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Security string `yaml:"security"` // starttls, tls or none
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile, when set, holds Password (read by Load).
	PasswordFile string `yaml:"password_file"`
	From         string `yaml:"from"`
}

// Storage is the content store: "fs" keeps contents in DATA_DIR/store
// (nodes of a cluster then share that directory); "s3" puts them in an
// S3-compatible bucket (see blob/s3 and docs/stockage.md).
type Storage struct {
	// Kind is fs or s3.
	Kind string `yaml:"kind"`
	// Endpoint is the S3 server's URL (https://s3.gra.io.cloud.ovh.net);
	// "" means AWS itself for Region.
	Endpoint string `yaml:"endpoint"`
	// Region is the signing region; "": AWS_REGION or the AWS files, else
	// us-east-1 (what most S3-compatible servers expect).
	Region string `yaml:"region"`
	Bucket string `yaml:"bucket"`
	// Prefix is put before every key ("pigp/"): one bucket can hold
	// several installations.
	Prefix string `yaml:"prefix"`
	// AccessKey and SecretKey or SecretKeyFile are the credentials; both
	// empty: the usual AWS chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE and
	// ~/.aws/credentials, web identity, instance role).
	AccessKey     string `yaml:"access_key"`
	SecretKey     string `yaml:"secret_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	// PathStyle addresses the bucket as https://host/bucket/key (most
	// on-premises servers need it) instead of https://bucket.host/key.
	PathStyle bool `yaml:"path_style"`
	// TLSCA is a PEM file of CAs trusted besides the system's.
	TLSCA string `yaml:"tls_ca"`
	// Quota is the room the bucket may take, for statvfs and the
	// free-space check (min_free_space applies to it); 0: unknown, and
	// uploads are let through.
	Quota Size `yaml:"quota"`
	// MultipartThreshold: larger objects are sent in parts of PartSize,
	// Concurrency parts of one object at once.
	MultipartThreshold Size `yaml:"multipart_threshold"`
	PartSize           Size `yaml:"part_size"`
	Concurrency        int  `yaml:"concurrency"`
	// MaxAttempts bounds the attempts of one request (retries with
	// exponential backoff included); RequestTimeout bounds each attempt's
	// wait for the server's answer.
	MaxAttempts    int      `yaml:"max_attempts"`
	RequestTimeout Duration `yaml:"request_timeout"`
}

// S3 reports whether contents live in object storage.
func (s Storage) S3() bool { return s.Kind == "s3" }

// minPartSize is the smallest part S3 accepts (but for the last one);
// maxPartSize the largest.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
)

func defaultStorage() Storage {
	return Storage{
		Kind: "fs", MultipartThreshold: 64 << 20, PartSize: 16 << 20, Concurrency: 4,
		MaxAttempts: 4, RequestTimeout: Duration(2 * time.Minute),
	}
}

// validate checks the storage settings; those of S3 only when Kind is s3.
func (s Storage) validate() error {
	switch s.Kind {
	case "fs":
		return nil
	case "s3":
	default:
		return &ValidationError{"storage.kind", s.Kind, errors.New("must be fs or s3")}
	}
	if s.Bucket == "" {
		return &ValidationError{"storage.bucket", s.Bucket, errors.New("required with kind s3")}
	}
	if !validBucket(s.Bucket) {
		return &ValidationError{"storage.bucket", s.Bucket, errors.New("must be 3 to 63 lower-case letters, digits, dots and hyphens, beginning and ending with a letter or a digit")}
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
			err = errors.New("must be an http:// or https:// URL with a host (https://s3.example.fr)")
		} else if err == nil && u.User != nil {
			err = errors.New("must not hold credentials (use access_key and secret_key)")
		} else if err == nil && strings.Trim(u.Path, "/") != "" {
			err = errors.New("must not name a path: the bucket goes in storage.bucket")
		}
		if err != nil {
			return &ValidationError{"storage.endpoint", redact(s.Endpoint), err}
		}
	}
	if p := strings.Trim(s.Prefix, "/"); p != "" && !blob.ValidKey(p) {
		return &ValidationError{"storage.prefix", s.Prefix, errors.New("use lower-case letters, digits and / _ . -")}
	}
	// Load has read secret_key_file into SecretKey.
	if hasSecret := s.SecretKey != "" || s.SecretKeyFile != ""; (s.AccessKey != "") != hasSecret {
		return &ValidationError{"storage.access_key", s.AccessKey, errors.New("access_key and secret_key (or secret_key_file) go together; leave both empty for the AWS credential chain")}
	}
	if s.Quota < 0 {
		return &ValidationError{"storage.quota", s.Quota, errors.New("must not be negative")}
	}
	if s.PartSize < minPartSize || s.PartSize > maxPartSize {
		return &ValidationError{"storage.part_size", s.PartSize, errors.New("must be between 5MiB and 5GiB")}
	}
	if s.MultipartThreshold < s.PartSize || s.MultipartThreshold > maxPartSize {
		return &ValidationError{"storage.multipart_threshold", s.MultipartThreshold, errors.New("must be between part_size and 5GiB")}
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		return &ValidationError{"storage.concurrency", s.Concurrency, errors.New("must be between 1 and 64")}
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > 20 {
		return &ValidationError{"storage.max_attempts", s.MaxAttempts, errors.New("must be between 1 and 20")}
	}
	if s.RequestTimeout < Duration(time.Second) {
		return &ValidationError{"storage.request_timeout", time.Duration(s.RequestTimeout), errors.New("must be at least 1s")}
	}
	return nil
}

// validBucket reports whether name follows the S3 bucket naming rules
// (3 to 63 characters of [a-z0-9.-], a letter or digit at each end, no
// "..", not an IP address).
func validBucket(name string) bool {
	if len(name) < 3 || len(name) > 63 || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && ch != '.' && ch != '-' || (i == 0 || i == len(name)-1) && !alnum {
			return false
		}
	}
	_, err := netip.ParseAddr(name)
	return err != nil
}

// Duration is a time.Duration read from YAML as "21d", "504h" or "90s".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count read from YAML as 104857600, "100MiB" or "1GiB".
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseDuration parses a Go duration, also accepting a whole number of days ("21d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// Default returns the configuration used when nothing is set: everything
// embedded, under ./data.
func Default() Config {
	return Config{
		DataDir:                 "./data",
		SFTPListen:              ":2222",
		HTTPListen:              ":8080",
		MaxUploadSize:           100 << 20,
		Retention:               Duration(21 * 24 * time.Hour),
		PasswordValidityMonths:  12,
		HistoryMonths:           12,
		ShutdownTimeout:         Duration(30 * time.Second),
		ProxyProtocol:           ProxyProtocol{HeaderTimeout: Duration(5 * time.Second)},
		ProcessingSchedule:      "0 * * * * *",
		ProcessingStaleAfter:    Duration(15 * time.Minute),
		ExpirySchedule:          "0 */5 * * * *",
		PasswordSchedule:        "0 0 5 * * *",
		NotifySchedule:          "30 * * * * *",
		HousekeepingSchedule:    "0 17 * * * *",
		AuditCheckpointSchedule: "45 */10 * * * *",
		MinFreeSpace:            Space{Bytes: 1 << 30},
		DuplicateWindow:         Duration(24 * time.Hour),
		PasswordReminderDays:    []int{30, 7},
		SMTP:                    SMTP{Port: 587, Security: "starttls", From: "APA <noreply@apa.invalid>"},
		SessionIdle:             Duration(15 * time.Minute),
		SessionLifetime:         Duration(8 * time.Hour),
		LogLevel:                "info",
		LogFormat:               "text",
		LoginGraceTime:          Duration(60 * time.Second),
		MaxAuthTries:            4,
		MaxConnections:          1000,
		MaxConnectionsPerIP:     100,
		Throttle: Throttle{
			PairFreeFailures: 3, IPFreeFailures: 10, IPBanAfter: 30, BanTime: Duration(30 * time.Minute),
			BaseDelay: Duration(2 * time.Second), MaxDelay: Duration(15 * time.Minute),
			AccountSlowAfter: 10, BaseTarpit: Duration(250 * time.Millisecond), MaxTarpit: Duration(3 * time.Second),
			Forget: Duration(time.Hour),
		},
		Auth: Auth{
			MaxConcurrentHashes: runtime.NumCPU(), HashQueue: 128, HashWait: Duration(10 * time.Second),
			ReleaseMemory: true, MaxUnauthenticatedPerIP: 64,
		},
		Limits: Limits{
			MaxOpenHandles: 64, MaxUploadsPerAccount: 100, MaxSessionsPerAccount: 100, ReservedDescriptors: 256,
			RequestsInFlight: 16, ReleaseMemory: true,
		},
		Audit:   Audit{MaxDetailedRefusals: 10, RefusalSummaryAfter: Duration(time.Minute)},
		LDAP:    defaultLDAP(),
		Storage: defaultStorage(),
	}
}

// Load returns the defaults overridden by the YAML file at path (if path is
// not "") and then by the environment, as given by getenv.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	// "off" disables a listener; the code knows only "".
	for _, l := range []*string{&c.HTTPListen, &c.MetricsListen, &c.DebugListen} {
		if strings.EqualFold(strings.TrimSpace(*l), "off") {
			*l = ""
		}
	}
	var err error
	if c.DatabasePasswordFile != "" {
		if c.dbPassword, err = readSecret("database_password_file", c.DatabasePasswordFile); err != nil {
			return c, err
		}
	}
	if c.SMTP.PasswordFile != "" {
		if c.SMTP.Password, err = readSecret("smtp.password_file", c.SMTP.PasswordFile); err != nil {
			return c, err
		}
	}
	if c.Storage.SecretKeyFile != "" {
		if c.Storage.SecretKey != "" {
			return c, &ValidationError{"storage.secret_key_file", c.Storage.SecretKeyFile, errors.New("secret_key and secret_key_file exclude each other")}
		}
		if c.Storage.SecretKey, err = readSecret("storage.secret_key_file", c.Storage.SecretKeyFile); err != nil {
			return c, err
		}
	}
	return c, nil
}

// readSecret reads a secret from a file, without its final line break.
func readSecret(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", field, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", &ValidationError{field, path, errors.New("the file is empty")}
	}
	return s, nil
}

// envVars lists the environment variables read, with the field each sets.
var envVars = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"PIGP_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"PIGP_DATABASE_URL", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{"PIGP_DATABASE_PASSWORD_FILE", func(c *Config, v string) error { c.DatabasePasswordFile = v; return nil }},
	{"PIGP_SFTP_LISTEN", func(c *Config, v string) error { c.SFTPListen = v; return nil }},
	{"PIGP_HTTP_LISTEN", func(c *Config, v string) error { c.HTTPListen = v; return nil }},
	{"PIGP_METRICS_LISTEN", func(c *Config, v string) error { c.MetricsListen = v; return nil }},
	{"PIGP_DEBUG_LISTEN", func(c *Config, v string) error { c.DebugListen = v; return nil }},
	{"PIGP_SSH_CIPHERS", func(c *Config, v string) error { c.SSH.Ciphers = splitComma(v); return nil }},
	{"PIGP_TLS_CERT", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"PIGP_TLS_KEY", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"PIGP_SESSION_IDLE", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.SessionIdle = Duration(d)
		return err
	}},
	{"PIGP_SESSION_LIFETIME", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.SessionLifetime = Duration(d)
		return err
	}},
	{"PIGP_HTTP_TRUSTED_PROXIES", func(c *Config, v string) error { c.HTTPTrustedProxies = splitComma(v); return nil }},
	{"PIGP_PROXY_PROTOCOL_TRUSTED", func(c *Config, v string) error { c.ProxyProtocol.Trusted = splitComma(v); return nil }},
	{"PIGP_PROXY_PROTOCOL_HEADER_TIMEOUT", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.ProxyProtocol.HeaderTimeout = Duration(d)
		return err
	}},
	{"PIGP_DRAIN_DELAY", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.DrainDelay = Duration(d)
		return err
	}},
	{"PIGP_MAX_UPLOAD_SIZE", func(c *Config, v string) error {
		n, err := ParseSize(v)
		c.MaxUploadSize = Size(n)
		return err
	}},
	{"PIGP_RETENTION", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.Retention = Duration(d)
		return err
	}},
	{"PIGP_PASSWORD_VALIDITY_MONTHS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.PasswordValidityMonths = n
		return err
	}},
	{"PIGP_SHUTDOWN_TIMEOUT", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.ShutdownTimeout = Duration(d)
		return err
	}},
	{"PIGP_PROCESSING_SCHEDULE", func(c *Config, v string) error { c.ProcessingSchedule = v; return nil }},
	{"PIGP_SMTP_HOST", func(c *Config, v string) error { c.SMTP.Host = v; return nil }},
	{"PIGP_SMTP_PORT", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.SMTP.Port = n
		return err
	}},
	{"PIGP_SMTP_SECURITY", func(c *Config, v string) error { c.SMTP.Security = v; return nil }},
	{"PIGP_SMTP_USERNAME", func(c *Config, v string) error { c.SMTP.Username = v; return nil }},
	{"PIGP_SMTP_PASSWORD", func(c *Config, v string) error { c.SMTP.Password = v; return nil }},
	{"PIGP_SMTP_PASSWORD_FILE", func(c *Config, v string) error { c.SMTP.PasswordFile = v; return nil }},
	{"PIGP_SMTP_FROM", func(c *Config, v string) error { c.SMTP.From = v; return nil }},
	{"PIGP_PORTAL_URL", func(c *Config, v string) error { c.PortalURL = v; return nil }},
	{"PIGP_LOG_LEVEL", func(c *Config, v string) error { c.LogLevel = v; return nil }},
	{"PIGP_LOG_FORMAT", func(c *Config, v string) error { c.LogFormat = v; return nil }},
	{"PIGP_LOGIN_GRACE_TIME", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.LoginGraceTime = Duration(d)
		return err
	}},
	{"PIGP_MAX_AUTH_TRIES", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.MaxAuthTries = n
		return err
	}},
	{"PIGP_MAX_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.MaxConnections = n
		return err
	}},
	{"PIGP_MAX_CONNECTIONS_PER_IP", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.MaxConnectionsPerIP = n
		return err
	}},
	{"PIGP_AUDIT_KEY_FILE", func(c *Config, v string) error { c.AuditKeyFile = v; return nil }},
	{"PIGP_AUDIT_KEY", func(c *Config, v string) error { c.AuditKey = v; return nil }},
	{"PIGP_AUDIT_CHECKPOINT_FILE", func(c *Config, v string) error { c.AuditCheckpointFile = v; return nil }},
	{"PIGP_MIN_FREE_SPACE", func(c *Config, v string) error {
		sp, err := ParseSpace(v)
		c.MinFreeSpace = sp
		return err
	}},
	{"PIGP_DUPLICATE_WINDOW", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.DuplicateWindow = Duration(d)
		return err
	}},
	{"PIGP_MAX_CONCURRENT_HASHES", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Auth.MaxConcurrentHashes = n
		return err
	}},
	{"PIGP_MEMORY_LIMIT", func(c *Config, v string) error {
		n, err := ParseSize(v)
		c.MemoryLimit = Size(n)
		return err
	}},
	{"PIGP_MAX_OPEN_FILES", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Limits.MaxOpenFiles = n
		return err
	}},
	{"PIGP_LDAP_URL", func(c *Config, v string) error { c.LDAP.URL = v; return nil }},
	{"PIGP_LDAP_CA_FILE", func(c *Config, v string) error { c.LDAP.CAFile = v; return nil }},
	{"PIGP_LDAP_BIND_DN", func(c *Config, v string) error { c.LDAP.BindDN = v; return nil }},
	// The environment's password wins over the file's, and the other way round.
	{"PIGP_LDAP_BIND_PASSWORD", func(c *Config, v string) error {
		c.LDAP.BindPassword, c.LDAP.BindPasswordFile = v, ""
		return nil
	}},
	{"PIGP_LDAP_BIND_PASSWORD_FILE", func(c *Config, v string) error {
		c.LDAP.BindPasswordFile, c.LDAP.BindPassword = v, ""
		return nil
	}},
	{"PIGP_LDAP_BASE_DN", func(c *Config, v string) error { c.LDAP.BaseDN = v; return nil }},
	{"PIGP_BAN_TIME", func(c *Config, v string) error {
		d, err := ParseDuration(v)
		c.Throttle.BanTime = Duration(d)
		return err
	}},
	{"PIGP_STORAGE_KIND", func(c *Config, v string) error { c.Storage.Kind = v; return nil }},
	{"PIGP_S3_ENDPOINT", func(c *Config, v string) error { c.Storage.Endpoint = v; return nil }},
	{"PIGP_S3_REGION", func(c *Config, v string) error { c.Storage.Region = v; return nil }},
	{"PIGP_S3_BUCKET", func(c *Config, v string) error { c.Storage.Bucket = v; return nil }},
	{"PIGP_S3_PREFIX", func(c *Config, v string) error { c.Storage.Prefix = v; return nil }},
	{"PIGP_S3_ACCESS_KEY", func(c *Config, v string) error { c.Storage.AccessKey = v; return nil }},
	// The environment's secret key wins over the file's, and the other way round.
	{"PIGP_S3_SECRET_KEY", func(c *Config, v string) error {
		c.Storage.SecretKey, c.Storage.SecretKeyFile = v, ""
		return nil
	}},
	{"PIGP_S3_SECRET_KEY_FILE", func(c *Config, v string) error {
		c.Storage.SecretKeyFile, c.Storage.SecretKey = v, ""
		return nil
	}},
	{"PIGP_S3_PATH_STYLE", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Storage.PathStyle = b
		return err
	}},
	{"PIGP_S3_TLS_CA", func(c *Config, v string) error { c.Storage.TLSCA = v; return nil }},
	{"PIGP_S3_QUOTA", func(c *Config, v string) error {
		n, err := ParseSize(v)
		c.Storage.Quota = Size(n)
		return err
	}},
}

// splitComma splits a list given in one environment variable.
func splitComma(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// EnvNames lists the environment variables Load reads, in order.
func EnvNames() []string {
	out := make([]string, len(envVars))
	for i, e := range envVars {
		out[i] = e.name
	}
	return out
}

func (c *Config) applyEnv(getenv func(string) string) error {
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return nil
}

// ParseSize parses a byte count such as "104857600", "100MiB" or "1GiB".
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q", orig)
	}
	return n * mult, nil
}

// ValidationError names the field that failed validation.
type ValidationError struct {
	Field string
	Value any
	Err   error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("config: %s = %v: %v", e.Field, e.Value, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return &ValidationError{"data_dir", c.DataDir, errors.New("must not be empty")}
	}
	if _, _, err := net.SplitHostPort(c.SFTPListen); err != nil {
		return &ValidationError{"sftp_listen", c.SFTPListen, err}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return &ValidationError{"tls_cert", c.TLSCert, errors.New("tls_cert and tls_key go together")}
	}
	if c.SessionIdle <= 0 {
		return &ValidationError{"session_idle", time.Duration(c.SessionIdle), errors.New("must be positive")}
	}
	if c.SessionLifetime < c.SessionIdle {
		return &ValidationError{"session_lifetime", time.Duration(c.SessionLifetime), errors.New("must be at least session_idle")}
	}
	if _, err := ParsePrefixes(c.HTTPTrustedProxies); err != nil {
		return &ValidationError{"http_trusted_proxies", c.HTTPTrustedProxies, err}
	}
	if _, err := ParsePrefixes(c.ProxyProtocol.Trusted); err != nil {
		return &ValidationError{"proxy_protocol.trusted", c.ProxyProtocol.Trusted, err}
	}
	if c.ProxyProtocol.HeaderTimeout <= 0 {
		return &ValidationError{"proxy_protocol.header_timeout", time.Duration(c.ProxyProtocol.HeaderTimeout), errors.New("must be positive")}
	}
	if c.DrainDelay < 0 || c.DrainDelay > Duration(5*time.Minute) {
		return &ValidationError{"drain_delay", time.Duration(c.DrainDelay), errors.New("must be between 0 and 5m")}
	}
	if c.HTTPListen != "" && c.HTTPListen != "off" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			return &ValidationError{"http_listen", c.HTTPListen, err}
		}
	}
	if c.MetricsListen != "" && c.MetricsListen != "off" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return &ValidationError{"metrics_listen", c.MetricsListen, err}
		}
	}
	if c.DebugListen != "" && c.DebugListen != "off" {
		if err := loopbackOnly(c.DebugListen); err != nil {
			return &ValidationError{"debug_listen", c.DebugListen, err}
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		return &ValidationError{"database_url", redact(c.DatabaseURL), errors.New("must start with postgres://, postgresql:// or sqlite://")}
	}
	if c.DatabasePasswordFile != "" {
		if dialect, _ := c.Database(); dialect != "postgres" {
			return &ValidationError{"database_password_file", c.DatabasePasswordFile, errors.New("needs a postgres:// database_url")}
		}
		if u, err := url.Parse(c.DatabaseURL); err != nil || u.User == nil {
			return &ValidationError{"database_password_file", c.DatabasePasswordFile, errors.New("database_url must name the user (postgres://user@host/db)")}
		} else if _, set := u.User.Password(); set {
			return &ValidationError{"database_password_file", c.DatabasePasswordFile, errors.New("database_url already holds a password")}
		}
	}
	if c.MaxUploadSize <= 0 {
		return &ValidationError{"max_upload_size", c.MaxUploadSize, errors.New("must be positive")}
	}
	if c.Retention <= 0 {
		return &ValidationError{"retention", time.Duration(c.Retention), errors.New("must be positive")}
	}
	if c.PasswordValidityMonths <= 0 || c.PasswordValidityMonths > 120 {
		return &ValidationError{"password_validity_months", c.PasswordValidityMonths, errors.New("must be between 1 and 120")}
	}
	if c.HistoryMonths <= 0 {
		return &ValidationError{"history_months", c.HistoryMonths, errors.New("must be positive")}
	}
	if c.ProcessingSchedule == "" {
		return &ValidationError{"processing_schedule", c.ProcessingSchedule, errors.New("must not be empty")}
	}
	if c.ProcessingStaleAfter <= 0 {
		return &ValidationError{"processing_stale_after", time.Duration(c.ProcessingStaleAfter), errors.New("must be positive")}
	}
	for _, sch := range []struct{ field, value string }{
		{"processing_schedule", c.ProcessingSchedule}, {"expiry_schedule", c.ExpirySchedule},
		{"password_schedule", c.PasswordSchedule}, {"notify_schedule", c.NotifySchedule},
		{"housekeeping_schedule", c.HousekeepingSchedule}, {"audit_checkpoint_schedule", c.AuditCheckpointSchedule},
	} {
		if len(strings.Fields(sch.value)) != 6 {
			return &ValidationError{sch.field, sch.value, errors.New("must be a cron expression with seconds (6 fields)")}
		}
	}
	for _, d := range c.PasswordReminderDays {
		if d <= 0 || d > 365 {
			return &ValidationError{"password_reminder_days", c.PasswordReminderDays, errors.New("days must be between 1 and 365")}
		}
	}
	if c.SMTP.Host != "" {
		switch c.SMTP.Security {
		case "starttls", "tls", "none":
		default:
			return &ValidationError{"smtp.security", c.SMTP.Security, errors.New("must be starttls, tls or none")}
		}
		if c.SMTP.Port <= 0 || c.SMTP.Port > 65535 {
			return &ValidationError{"smtp.port", c.SMTP.Port, errors.New("must be a TCP port")}
		}
		if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
			return &ValidationError{"smtp.from", c.SMTP.From, err}
		}
	}
	if c.LoginGraceTime < Duration(time.Second) {
		return &ValidationError{"login_grace_time", time.Duration(c.LoginGraceTime), errors.New("must be at least 1s")}
	}
	if c.MaxAuthTries < 1 || c.MaxAuthTries > 20 {
		return &ValidationError{"max_auth_tries", c.MaxAuthTries, errors.New("must be between 1 and 20")}
	}
	for i, name := range c.SSH.Ciphers {
		if !slices.Contains(sshCiphers, name) {
			return &ValidationError{"ssh.ciphers", c.SSH.Ciphers, fmt.Errorf("%q is not one of %s", name, strings.Join(sshCiphers, ", "))}
		}
		if slices.Contains(c.SSH.Ciphers[:i], name) {
			return &ValidationError{"ssh.ciphers", c.SSH.Ciphers, fmt.Errorf("%q is listed twice", name)}
		}
	}
	if c.MaxConnections < 1 {
		return &ValidationError{"max_connections", c.MaxConnections, errors.New("must be positive")}
	}
	if c.MaxConnectionsPerIP < 1 || c.MaxConnectionsPerIP > c.MaxConnections {
		return &ValidationError{"max_connections_per_ip", c.MaxConnectionsPerIP, errors.New("must be between 1 and max_connections")}
	}
	t := c.Throttle
	for _, f := range []struct {
		name string
		v    int
	}{{"throttle.pair_free_failures", t.PairFreeFailures}, {"throttle.ip_free_failures", t.IPFreeFailures},
		{"throttle.ip_ban_after", t.IPBanAfter}, {"throttle.account_slow_after", t.AccountSlowAfter}} {
		if f.v < 0 {
			return &ValidationError{f.name, f.v, errors.New("must not be negative")}
		}
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{{"throttle.ban_time", t.BanTime}, {"throttle.base_delay", t.BaseDelay}, {"throttle.max_delay", t.MaxDelay},
		{"throttle.max_tarpit", t.MaxTarpit}, {"throttle.forget", t.Forget}} {
		if f.v <= 0 {
			return &ValidationError{f.name, time.Duration(f.v), errors.New("must be positive")}
		}
	}
	if t.MaxTarpit > Duration(30*time.Second) {
		return &ValidationError{"throttle.max_tarpit", time.Duration(t.MaxTarpit), errors.New("must be at most 30s")}
	}
	if c.DuplicateWindow < 0 {
		return &ValidationError{"duplicate_window", time.Duration(c.DuplicateWindow), errors.New("must not be negative")}
	}
	if c.MinFreeSpace.Bytes < 0 || c.MinFreeSpace.Percent < 0 || c.MinFreeSpace.Percent >= 100 {
		return &ValidationError{"min_free_space", c.MinFreeSpace, errors.New("must be a size or a percentage below 100%")}
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.Storage.validate(); err != nil {
		return err
	}
	if c.LDAP.Enabled() {
		d := c.LDAP.Directory()
		if err := d.Validate(); err != nil {
			field, _, _ := strings.Cut(err.Error(), " ")
			return &ValidationError{strings.TrimSuffix(field, ":"), redactLDAP(c.LDAP), err}
		}
	}
	if _, err := c.CampaignWindows(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &ValidationError{"log_level", c.LogLevel, errors.New("must be debug, info, warn or error")}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &ValidationError{"log_format", c.LogFormat, errors.New("must be text or json")}
	}
	return nil
}

// CampaignWindows returns the configured campaign windows, checked: valid
// days, the opening not after the closing, one window per year.
func (c Config) CampaignWindows() ([]pigp.Campaign, error) {
	out := make([]pigp.Campaign, 0, len(c.Campaigns))
	seen := map[int]bool{}
	for i, cc := range c.Campaigns {
		field := fmt.Sprintf("campaigns[%d]", i)
		w, err := pigp.NewCampaign(cc.Year, string(cc.Opens), string(cc.Closes))
		if err != nil {
			return nil, &ValidationError{field, fmt.Sprintf("{year: %d, opens: %s, closes: %s}", cc.Year, cc.Opens, cc.Closes),
				errors.New(pigp.ErrorMessage(err))}
		}
		if seen[cc.Year] {
			return nil, &ValidationError{field, cc.Year, errors.New("a second window for the same year")}
		}
		seen[cc.Year] = true
		w.Source = pigp.CampaignFromConfig
		out = append(out, w)
	}
	return out, nil
}

// validateLimits checks the auth, limits, audit and memory settings.
func (c Config) validateLimits() error {
	for _, f := range []struct {
		name     string
		v        int
		min, max int
	}{
		{"auth.max_concurrent_hashes", c.Auth.MaxConcurrentHashes, 1, 1024},
		{"auth.hash_queue", c.Auth.HashQueue, 0, 100_000},
		{"auth.max_unauthenticated_per_ip", c.Auth.MaxUnauthenticatedPerIP, 1, 100_000},
		{"limits.max_open_handles", c.Limits.MaxOpenHandles, 1, 1_000_000},
		{"limits.max_uploads_per_account", c.Limits.MaxUploadsPerAccount, 1, 1_000_000},
		{"limits.max_sessions_per_account", c.Limits.MaxSessionsPerAccount, 1, 1_000_000},
		{"limits.max_open_files", c.Limits.MaxOpenFiles, 0, 100_000_000},
		{"limits.reserved_descriptors", c.Limits.ReservedDescriptors, 0, 1_000_000},
		{"limits.requests_in_flight", c.Limits.RequestsInFlight, 1, 1_000_000},
		{"audit.max_detailed_refusals", c.Audit.MaxDetailedRefusals, 1, 100_000},
	} {
		if f.v < f.min || f.v > f.max {
			return &ValidationError{f.name, f.v, fmt.Errorf("must be between %d and %d", f.min, f.max)}
		}
	}
	if c.Auth.HashWait <= 0 || c.Auth.HashWait > Duration(10*time.Minute) {
		return &ValidationError{"auth.hash_wait", time.Duration(c.Auth.HashWait), errors.New("must be positive and at most 10m")}
	}
	if c.Audit.RefusalSummaryAfter <= 0 {
		return &ValidationError{"audit.refusal_summary_after", time.Duration(c.Audit.RefusalSummaryAfter), errors.New("must be positive")}
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		return &ValidationError{"memory_limit", c.MemoryLimit, errors.New("must be 0 (none) or at least 64MiB")}
	}
	return nil
}

// Database returns the gorm dialect ("sqlite" or "postgres") and DSN.
func (c Config) Database() (dialect, dsn string) {
	switch {
	case c.DatabaseURL == "":
		return "sqlite", filepath.Join(c.DataDir, "pigp.db")
	case strings.HasPrefix(c.DatabaseURL, "sqlite://"):
		return "sqlite", strings.TrimPrefix(c.DatabaseURL, "sqlite://")
	default:
		return "postgres", c.withPassword(c.DatabaseURL)
	}
}

// withPassword puts the password read from database_password_file into a
// PostgreSQL URL that names a user without a password.
func (c Config) withPassword(dsn string) string {
	if c.dbPassword == "" {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, set := u.User.Password(); set {
		return dsn
	}
	u.User = url.UserPassword(u.User.Username(), c.dbPassword)
	return u.String()
}

// redactLDAP shows the directory settings without the password.
func redactLDAP(l LDAP) string {
	return fmt.Sprintf("{url: %s, base_dn: %s, bind_dn: %s}", l.URL, l.BaseDN, l.BindDN)
}

// redact hides a password in a URL-like string.
func redact(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.Index(s[i+3:], "@"); j >= 0 {
			return s[:i+3] + "***" + s[i+3+j:]
		}
	}
	return s
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// loopbackOnly accepts a host:port whose host is a loopback address
// (127.0.0.0/8, ::1) or localhost: what it serves (pprof) must not be
// reachable from the network.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)")
	}
	return nil
}
