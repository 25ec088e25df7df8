package config_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
)

// env returns a getenv function reading from m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a file in a temporary directory and returns its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "pigp.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	c := config.Default()
	tests := []struct {
		field     string
		got, want any
	}{
		{"DataDir", c.DataDir, "./data"},
		{"DatabaseURL", c.DatabaseURL, ""},
		{"SFTPListen", c.SFTPListen, ":2222"},
		{"HTTPListen", c.HTTPListen, ":8080"},
		{"MaxUploadSize", int64(c.MaxUploadSize), int64(100 << 20)},
		{"Retention", c.Retention.Std(), 21 * 24 * time.Hour},
		{"PasswordValidityMonths", c.PasswordValidityMonths, 12},
		{"HistoryMonths", c.HistoryMonths, 12},
		{"ShutdownTimeout", c.ShutdownTimeout.Std(), 30 * time.Second},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "text"},
		{"Auth.MaxConcurrentHashes", c.Auth.MaxConcurrentHashes, runtime.NumCPU()},
		{"Auth.HashQueue", c.Auth.HashQueue, 128},
		{"Auth.MaxUnauthenticatedPerIP", c.Auth.MaxUnauthenticatedPerIP, 64},
		{"Limits.MaxOpenHandles", c.Limits.MaxOpenHandles, 64},
		{"Limits.MaxUploadsPerAccount", c.Limits.MaxUploadsPerAccount, 100},
		{"Limits.MaxSessionsPerAccount", c.Limits.MaxSessionsPerAccount, 100},
		{"Audit.MaxDetailedRefusals", c.Audit.MaxDetailedRefusals, 10},
		{"MemoryLimit", int64(c.MemoryLimit), int64(0)},
	}
	// A département's batch tool runs 50 transfers at once from one
	// address and one account: no per-address or per-account default
	// may stand in its way.
	for _, n := range []int{c.Auth.MaxUnauthenticatedPerIP, c.Limits.MaxUploadsPerAccount, c.Limits.MaxSessionsPerAccount} {
		if n < 50 {
			t.Errorf("a per-address or per-account default is %d, below 50 parallel transfers", n)
		}
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("Default().%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	dialect, dsn := c.Database()
	if dialect != "sqlite" || dsn != filepath.Join("data", "pigp.db") {
		t.Fatalf("Default().Database() = %q, %q; want sqlite, data/pigp.db", dialect, dsn)
	}
}

func TestLoad(t *testing.T) {
	const file = `
data_dir: /srv/pigp
database_url: postgres://pigp:secret@db/pigp
sftp_listen: 127.0.0.1:22
http_listen: 127.0.0.1:8443
max_upload_size: 1048576
retention: 14d
password_validity_months: 6
history_months: 24
shutdown_timeout: 90s
log_level: debug
log_format: json
`
	path := writeFile(t, file)
	// fromFile is the configuration the file describes.
	fromFile := func() config.Config {
		c := config.Default()
		c.DataDir = "/srv/pigp"
		c.DatabaseURL = "postgres://pigp:secret@db/pigp"
		c.SFTPListen = "127.0.0.1:22"
		c.HTTPListen = "127.0.0.1:8443"
		c.MaxUploadSize = 1 << 20
		c.Retention = config.Duration(14 * 24 * time.Hour)
		c.PasswordValidityMonths = 6
		c.HistoryMonths = 24
		c.ShutdownTimeout = config.Duration(90 * time.Second)
		c.LogLevel = "debug"
		c.LogFormat = "json"
		return c
	}

	t.Run("NoFileNoEnv", func(t *testing.T) {
		c, err := config.Load("", env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, config.Default()) {
			t.Fatalf("Load(\"\") = %+v, want the defaults", c)
		}
	})

	t.Run("File", func(t *testing.T) {
		c, err := config.Load(path, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := fromFile()
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("Load(file) =\n%+v\nwant\n%+v", c, want)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate() = %v", err)
		}
	})

	t.Run("EnvWinsOverFile", func(t *testing.T) {
		c, err := config.Load(path, env(map[string]string{
			"PIGP_DATA_DIR":                 "/var/lib/pigp",
			"PIGP_DATABASE_URL":             "sqlite:///var/lib/pigp/x.db",
			"PIGP_SFTP_LISTEN":              ":2022",
			"PIGP_HTTP_LISTEN":              ":9090",
			"PIGP_MAX_UPLOAD_SIZE":          "1GiB",
			"PIGP_RETENTION":                "21d",
			"PIGP_PASSWORD_VALIDITY_MONTHS": "3",
			"PIGP_SHUTDOWN_TIMEOUT":         "5s",
			"PIGP_LOG_LEVEL":                "warn",
			"PIGP_LOG_FORMAT":               "text",
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := fromFile()
		want.DataDir = "/var/lib/pigp"
		want.DatabaseURL = "sqlite:///var/lib/pigp/x.db"
		want.SFTPListen = ":2022"
		want.HTTPListen = ":9090"
		want.MaxUploadSize = 1 << 30
		want.Retention = config.Duration(21 * 24 * time.Hour)
		want.PasswordValidityMonths = 3
		want.ShutdownTimeout = config.Duration(5 * time.Second)
		want.LogLevel = "warn"
		want.LogFormat = "text"
		// HistoryMonths has no environment variable: the file's value stays.
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("Load(file, env) =\n%+v\nwant\n%+v", c, want)
		}
	})

	t.Run("EmptyEnvIgnored", func(t *testing.T) {
		c, err := config.Load(path, env(map[string]string{"PIGP_DATA_DIR": "", "PIGP_SFTP_LISTEN": ""}))
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != "/srv/pigp" || c.SFTPListen != "127.0.0.1:22" {
			t.Fatalf("DataDir, SFTPListen = %q, %q; want the file's values", c.DataDir, c.SFTPListen)
		}
	})

	t.Run("PartialFileKeepsDefaults", func(t *testing.T) {
		c, err := config.Load(writeFile(t, "data_dir: /tmp/x\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := config.Default()
		want.DataDir = "/tmp/x"
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("Load = %+v, want %+v", c, want)
		}
	})

	t.Run("EmptyFile", func(t *testing.T) {
		for _, content := range []string{"", "\n", "# only a comment\n"} {
			c, err := config.Load(writeFile(t, content), env(nil))
			if err != nil {
				t.Fatalf("Load(%q) = %v, want nil", content, err)
			}
			if !reflect.DeepEqual(c, config.Default()) {
				t.Fatalf("Load(%q) = %+v, want the defaults", content, c)
			}
		}
	})

	t.Run("UnknownKey", func(t *testing.T) {
		_, err := config.Load(writeFile(t, "data_dir: /x\nsftp_lisen: :22\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), "sftp_lisen") {
			t.Fatalf("Load(unknown key) = %v, want an error naming sftp_lisen", err)
		}
	})

	t.Run("BadYAMLValue", func(t *testing.T) {
		_, err := config.Load(writeFile(t, "retention: three weeks\n"), env(nil))
		if err == nil {
			t.Fatal("Load(retention: three weeks) = nil, want an error")
		}
	})

	t.Run("MissingFile", func(t *testing.T) {
		_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), env(nil))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
		}
	})

	t.Run("BadEnv", func(t *testing.T) {
		for name, value := range map[string]string{
			"PIGP_MAX_UPLOAD_SIZE":          "lots",
			"PIGP_RETENTION":                "3 weeks",
			"PIGP_PASSWORD_VALIDITY_MONTHS": "twelve",
			"PIGP_SHUTDOWN_TIMEOUT":         "soon",
		} {
			_, err := config.Load("", env(map[string]string{name: value}))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("Load(%s=%q) = %v, want an error naming %s", name, value, err, name)
			}
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		field  string
		change func(c *config.Config)
	}{
		{"data_dir", func(c *config.Config) { c.DataDir = "" }},
		{"sftp_listen", func(c *config.Config) { c.SFTPListen = "2222" }},
		{"sftp_listen", func(c *config.Config) { c.SFTPListen = "" }},
		{"http_listen", func(c *config.Config) { c.HTTPListen = "localhost" }},
		{"database_url", func(c *config.Config) { c.DatabaseURL = "mysql://root:hunter2@db/pigp" }},
		{"max_upload_size", func(c *config.Config) { c.MaxUploadSize = 0 }},
		{"retention", func(c *config.Config) { c.Retention = 0 }},
		{"retention", func(c *config.Config) { c.Retention = config.Duration(-time.Hour) }},
		{"password_validity_months", func(c *config.Config) { c.PasswordValidityMonths = 0 }},
		{"password_validity_months", func(c *config.Config) { c.PasswordValidityMonths = 121 }},
		{"history_months", func(c *config.Config) { c.HistoryMonths = 0 }},
		{"log_level", func(c *config.Config) { c.LogLevel = "verbose" }},
		{"log_format", func(c *config.Config) { c.LogFormat = "xml" }},
		{"auth.max_concurrent_hashes", func(c *config.Config) { c.Auth.MaxConcurrentHashes = 0 }},
		{"auth.hash_queue", func(c *config.Config) { c.Auth.HashQueue = -1 }},
		{"auth.hash_wait", func(c *config.Config) { c.Auth.HashWait = 0 }},
		{"auth.max_unauthenticated_per_ip", func(c *config.Config) { c.Auth.MaxUnauthenticatedPerIP = 0 }},
		{"limits.max_open_handles", func(c *config.Config) { c.Limits.MaxOpenHandles = 0 }},
		{"limits.max_uploads_per_account", func(c *config.Config) { c.Limits.MaxUploadsPerAccount = 0 }},
		{"limits.max_sessions_per_account", func(c *config.Config) { c.Limits.MaxSessionsPerAccount = -3 }},
		{"limits.max_open_files", func(c *config.Config) { c.Limits.MaxOpenFiles = -1 }},
		{"limits.reserved_descriptors", func(c *config.Config) { c.Limits.ReservedDescriptors = -1 }},
		{"limits.requests_in_flight", func(c *config.Config) { c.Limits.RequestsInFlight = 0 }},
		{"audit.max_detailed_refusals", func(c *config.Config) { c.Audit.MaxDetailedRefusals = 0 }},
		{"audit.refusal_summary_after", func(c *config.Config) { c.Audit.RefusalSummaryAfter = 0 }},
		{"memory_limit", func(c *config.Config) { c.MemoryLimit = 1 << 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := config.Default()
			tt.change(&c)
			err := c.Validate()
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Fatalf("ValidationError.Field = %q, want %q", ve.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Error() = %q, want it to name %q", err.Error(), tt.field)
			}
			if ve.Unwrap() == nil {
				t.Fatal("ValidationError.Unwrap() = nil, want the cause")
			}
		})
	}

	t.Run("DatabaseURLPasswordRedacted", func(t *testing.T) {
		c := config.Default()
		c.DatabaseURL = "mysql://root:hunter2@db/pigp"
		if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("Validate() = %v, want an error without the password", err)
		}
	})

	t.Run("Valid", func(t *testing.T) {
		for _, change := range []func(c *config.Config){
			func(c *config.Config) { c.HTTPListen = "" }, // portal disabled
			func(c *config.Config) { c.DatabaseURL = "postgres://u:p@h/db" },
			func(c *config.Config) { c.DatabaseURL = "postgresql://u:p@h/db" },
			func(c *config.Config) { c.DatabaseURL = "sqlite:///var/lib/pigp/pigp.db" },
			func(c *config.Config) { c.SFTPListen = "[::1]:2222" },
			func(c *config.Config) { c.PasswordValidityMonths = 120 },
			func(c *config.Config) { c.MemoryLimit = 512 << 20 },
			func(c *config.Config) { c.Auth.HashQueue = 0 },
		} {
			c := config.Default()
			change(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", c, err)
			}
		}
	})
}

func TestConfig_Database(t *testing.T) {
	tests := []struct {
		url         string
		wantDialect string
		wantDSN     string
	}{
		{"", "sqlite", filepath.Join("/srv/pigp", "pigp.db")},
		{"sqlite:///var/lib/pigp/other.db", "sqlite", "/var/lib/pigp/other.db"},
		{"sqlite://relative.db", "sqlite", "relative.db"},
		{"postgres://pigp:secret@db:5432/pigp?sslmode=disable", "postgres", "postgres://pigp:secret@db:5432/pigp?sslmode=disable"},
		{"postgresql://pigp@db/pigp", "postgres", "postgresql://pigp@db/pigp"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c := config.Default()
			c.DataDir = "/srv/pigp"
			c.DatabaseURL = tt.url
			dialect, dsn := c.Database()
			if dialect != tt.wantDialect || dsn != tt.wantDSN {
				t.Fatalf("Database() = %q, %q; want %q, %q", dialect, dsn, tt.wantDialect, tt.wantDSN)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"104857600", 100 << 20, true},
		{"100MiB", 100 << 20, true},
		{"100 MiB", 100 << 20, true},
		{" 1GiB ", 1 << 30, true},
		{"64KiB", 64 << 10, true},
		{"2GB", 2e9, true},
		{"5MB", 5e6, true},
		{"10KB", 1e4, true},
		{"512B", 512, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"-1MiB", 0, false},
		{"1.5GiB", 0, false},
		{"lots", 0, false},
		{"100mib", 0, false},
		{"9223372036854775808", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseSize(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
				}
			} else if err == nil {
				t.Fatalf("ParseSize(%q) = %d, nil; want an error", tt.in, got)
			}
		})
	}
}

func TestParseSize_Overflow(t *testing.T) {
	// (2^34+1) GiB = 2^64 + 2^30 bytes: multiplying in int64 wraps around to
	// exactly 1 GiB, a plausible but wrong value.
	got, err := config.ParseSize("17179869185GiB")
	if err == nil {
		t.Fatalf("ParseSize(%q) = %d, nil; want an overflow error", "17179869185GiB", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"21d", 21 * 24 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"0d", 0, true},
		{" 7d ", 7 * 24 * time.Hour, true},
		{"504h", 504 * time.Hour, true},
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"1d12h", 0, false},
		{"three weeks", 0, false},
		{"21", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseDuration(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseDuration(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
				}
			} else if err == nil {
				t.Fatalf("ParseDuration(%q) = %v, nil; want an error", tt.in, got)
			}
		})
	}
}

func TestDuration_YAMLRoundTrip(t *testing.T) {
	d := config.Duration(21 * 24 * time.Hour)
	v, err := d.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("MarshalYAML() = %#v, want a string", v)
	}
	back, err := config.ParseDuration(s)
	if err != nil || back != d.Std() {
		t.Fatalf("ParseDuration(MarshalYAML() = %q) = %v, %v; want %v", s, back, err, d.Std())
	}
}

func TestLoad_SizeInYAML(t *testing.T) {
	// PIGP_MAX_UPLOAD_SIZE accepts "1GiB"; the same value in the file should too.
	c, err := config.Load(writeFile(t, "max_upload_size: 1GiB\n"), env(nil))
	if err != nil {
		t.Fatalf("max_upload_size: 1GiB in YAML refused: %v", err)
	}
	if c.MaxUploadSize != 1<<30 {
		t.Fatalf("MaxUploadSize = %d, want %d", c.MaxUploadSize, 1<<30)
	}
}

func TestIntegritySettings(t *testing.T) {
	c := config.Default()
	if c.MinFreeSpace != (config.Space{Bytes: 1 << 30}) || c.DuplicateWindow != config.Duration(24*time.Hour) ||
		c.AuditKeyPath() != filepath.Join("data", "audit.key") || c.AuditCheckpointPath() != filepath.Join("data", "audit-checkpoints.log") {
		t.Fatalf("defaults: %+v %v %s %s", c.MinFreeSpace, c.DuplicateWindow, c.AuditKeyPath(), c.AuditCheckpointPath())
	}
	env := map[string]string{"PIGP_MIN_FREE_SPACE": "5%", "PIGP_DUPLICATE_WINDOW": "2d", "PIGP_AUDIT_KEY_FILE": "/etc/pigp/audit.key",
		"PIGP_AUDIT_KEY": "ab", "PIGP_AUDIT_CHECKPOINT_FILE": "/var/log/pigp/points.log"}
	c, err := config.Load("", func(k string) string { return env[k] })
	if err != nil || c.Validate() != nil {
		t.Fatal(err, c.Validate())
	}
	if c.MinFreeSpace != (config.Space{Percent: 5}) || c.DuplicateWindow != config.Duration(48*time.Hour) || c.AuditKeyPath() != "/etc/pigp/audit.key" ||
		c.AuditKey != "ab" || c.AuditCheckpointPath() != "/var/log/pigp/points.log" {
		t.Fatalf("from the environment: %+v", c)
	}
	for in, want := range map[string]config.Space{"1GiB": {Bytes: 1 << 30}, "500MB": {Bytes: 500e6}, "0": {}, " 2.5 % ": {Percent: 2.5}} {
		if got, err := config.ParseSpace(in); err != nil || got != want {
			t.Errorf("config.ParseSpace(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"100%", "-1%", "beaucoup", "-5"} {
		if _, err := config.ParseSpace(bad); err == nil {
			t.Errorf("config.ParseSpace(%q) accepted", bad)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "pigp.yaml")
	os.WriteFile(file, []byte("min_free_space: 10%\nduplicate_window: 0s\naudit_checkpoint_schedule: \"0 0 * * * *\"\n"), 0o600)
	c, err = config.Load(file, func(string) string { return "" })
	if err != nil || c.MinFreeSpace.Percent != 10 || c.DuplicateWindow != 0 || c.AuditCheckpointSchedule != "0 0 * * * *" || c.Validate() != nil {
		t.Fatalf("from YAML: %+v %v", c, err)
	}
}

// TestLoad_ListenOff: "off" disables the portal and the metrics listener,
// from the file or the environment, and the configuration stays valid.
func TestLoad_ListenOff(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pigp.yaml")
	os.WriteFile(path, []byte("http_listen: \"off\"\nmetrics_listen: \"off\"\n"), 0o600)
	for name, tc := range map[string]struct {
		path string
		env  map[string]string
	}{
		"file": {path, nil},
		"env":  {"", map[string]string{"PIGP_HTTP_LISTEN": "off", "PIGP_METRICS_LISTEN": "OFF"}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(tc.path, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTPListen != "" || c.MetricsListen != "" {
				t.Fatalf("http_listen %q, metrics_listen %q; want both empty", c.HTTPListen, c.MetricsListen)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	c, err := config.Load("", env(map[string]string{"PIGP_METRICS_LISTEN": "127.0.0.1:9090"}))
	if err != nil || c.MetricsListen != "127.0.0.1:9090" || config.Default().MetricsListen != "" {
		t.Fatalf("metrics_listen from the environment: %q, %v (default %q, want off)", c.MetricsListen, err, config.Default().MetricsListen)
	}
	c.MetricsListen = "9090"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Fatalf("metrics_listen without a port: %v", err)
	}
}

// TestSSHCiphers: ssh.ciphers from the environment, only secure ciphers
// x/crypto implements, each once; unset by default (the server's offer).
func TestSSHCiphers(t *testing.T) {
	if d := config.Default().SSH.Ciphers; d != nil {
		t.Fatalf("ssh.ciphers defaults to %v, want unset", d)
	}
	c, err := config.Load("", env(map[string]string{"PIGP_SSH_CIPHERS": "aes256-gcm@openssh.com, aes256-ctr"}))
	if err != nil || len(c.SSH.Ciphers) != 2 || c.SSH.Ciphers[1] != "aes256-ctr" {
		t.Fatalf("ssh.ciphers from the environment: %q, %v", c.SSH.Ciphers, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"aes128-cbc"}, {"arcfour"}, {"3des-cbc"}, {"aes128-ctr", "aes128-ctr"}, {"AES128-CTR"}} {
		c.SSH.Ciphers = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ssh.ciphers") {
			t.Errorf("ssh.ciphers %q accepted (%v)", bad, err)
		}
	}
}

// TestDebugListenLoopbackOnly: the pprof listener is off by default, set
// from the file or the environment, and only on a loopback address.
func TestDebugListenLoopbackOnly(t *testing.T) {
	if d := config.Default().DebugListen; d != "" {
		t.Fatalf("debug_listen defaults to %q, want off", d)
	}
	c, err := config.Load("", env(map[string]string{"PIGP_DEBUG_LISTEN": "127.0.0.1:6060"}))
	if err != nil || c.DebugListen != "127.0.0.1:6060" {
		t.Fatalf("debug_listen from the environment: %q, %v", c.DebugListen, err)
	}
	for _, ok := range []string{"127.0.0.1:6060", "127.0.0.2:0", "[::1]:6060", "localhost:6060", "off", ""} {
		c.DebugListen = ok
		if err := c.Validate(); err != nil {
			t.Errorf("debug_listen %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.1.2.3:6060", "pigp.example.fr:6060", "6060"} {
		c.DebugListen = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "debug_listen") {
			t.Errorf("debug_listen %q accepted (%v)", bad, err)
		}
	}
}

// TestLoad_SecretFiles: passwords read from files (Docker secrets, systemd
// credentials) rather than written in the configuration.
func TestLoad_SecretFiles(t *testing.T) {
	dir := t.TempDir()
	dbpw := filepath.Join(dir, "db_password")
	os.WriteFile(dbpw, []byte("p@ss:w/rd é\n"), 0o600)
	smtppw := filepath.Join(dir, "smtp_password")
	os.WriteFile(smtppw, []byte("smtp-secret\r\n"), 0o600)
	c, err := config.Load("", env(map[string]string{
		"PIGP_DATABASE_URL":           "postgres://pigp@db:5432/pigp?sslmode=disable",
		"PIGP_DATABASE_PASSWORD_FILE": dbpw,
		"PIGP_SMTP_HOST":              "smtp.example.fr",
		"PIGP_SMTP_PASSWORD_FILE":     smtppw,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	dialect, dsn := c.Database()
	u, err := url.Parse(dsn)
	if err != nil || dialect != "postgres" {
		t.Fatalf("Database() = %q, %q, %v", dialect, dsn, err)
	}
	if pw, _ := u.User.Password(); pw != "p@ss:w/rd é" || u.User.Username() != "pigp" || u.Host != "db:5432" ||
		u.Query().Get("sslmode") != "disable" {
		t.Fatalf("dsn %q: password %q", dsn, pw)
	}
	if c.SMTP.Password != "smtp-secret" {
		t.Fatalf("smtp password %q", c.SMTP.Password)
	}
	// The --database-url flag replaces the URL after Load: the password
	// file still applies.
	c.DatabaseURL = "postgres://other@db2/pigp"
	if _, dsn := c.Database(); dsn != "postgres://other:p%40ss%3Aw%2Frd%20%C3%A9@db2/pigp" {
		t.Fatalf("dsn after the flag: %q", dsn)
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing file": {map[string]string{"PIGP_DATABASE_URL": "postgres://pigp@db/pigp",
			"PIGP_DATABASE_PASSWORD_FILE": filepath.Join(dir, "nope")}, "database_password_file"},
		"empty file": {map[string]string{"PIGP_DATABASE_URL": "postgres://pigp@db/pigp",
			"PIGP_DATABASE_PASSWORD_FILE": writeFile(t, "\n")}, "empty"},
		"sqlite": {map[string]string{"PIGP_DATABASE_PASSWORD_FILE": dbpw}, "needs a postgres"},
		"password twice": {map[string]string{"PIGP_DATABASE_URL": "postgres://pigp:x@db/pigp",
			"PIGP_DATABASE_PASSWORD_FILE": dbpw}, "already holds a password"},
		"no user": {map[string]string{"PIGP_DATABASE_URL": "postgres://db/pigp",
			"PIGP_DATABASE_PASSWORD_FILE": dbpw}, "must name the user"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load("", env(tc.env))
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestLoad_Campaigns(t *testing.T) {
	c, err := config.Load(writeFile(t, `campaigns:
  - {year: 2026, opens: 2026-01-15, closes: 2026-12-31}
  - year: 2027
    opens: "2027-01-15"
    closes: 2027-06-30
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := c.CampaignWindows()
	if err != nil || c.Validate() != nil {
		t.Fatalf("CampaignWindows: %v; Validate: %v", err, c.Validate())
	}
	if len(ws) != 2 || ws[0].Year != 2026 || ws[0].Opens.Format(time.DateOnly) != "2026-01-15" ||
		ws[1].Closes.Format(time.DateOnly) != "2027-06-30" || ws[0].Source != pigp.CampaignFromConfig {
		t.Fatalf("windows %+v", ws)
	}
	for _, bad := range []string{
		"campaigns:\n  - {year: 2026, opens: 2026-02-30, closes: 2026-12-31}\n",
		"campaigns:\n  - {year: 2026, opens: 2026-06-01, closes: 2026-05-31}\n",
		"campaigns:\n  - {year: 2026, opens: 2026-01-01, closes: 2026-06-30}\n  - {year: 2026, opens: 2026-07-01, closes: 2026-12-31}\n",
		"campaigns:\n  - {year: 26, opens: 2026-01-01, closes: 2026-06-30}\n",
	} {
		c, err := config.Load(writeFile(t, bad), env(nil))
		if err != nil {
			t.Fatalf("load %q: %v", bad, err)
		}
		var ve *config.ValidationError
		if err := c.Validate(); !errors.As(err, &ve) || !strings.HasPrefix(ve.Field, "campaigns[") {
			t.Errorf("Validate(%q) = %v, want a campaigns[i] error", bad, err)
		}
	}
}

func TestLoad_LDAP(t *testing.T) {
	c, err := config.Load("", env(nil))
	if err != nil || c.LDAP.Enabled() || c.Validate() != nil {
		t.Fatalf("default: enabled=%v, %v, %v", c.LDAP.Enabled(), err, c.Validate())
	}
	if !c.LDAP.StartTLS || c.LDAP.LocalLogins != "-xt$" || c.LDAP.GroupAttribute != "memberOf" || c.LDAP.PoolSize != 4 {
		t.Fatalf("LDAP defaults: %+v", c.LDAP)
	}
	p := writeFile(t, `
ldap:
  url: ldap://annuaire.dgfip.test
  start_tls: false
  bind_dn: cn=pigp,ou=services,dc=dgfip,dc=test
  bind_password: yaml-secret
  base_dn: ou=people,dc=dgfip,dc=test
  user_filter: (&(objectClass=user)(sAMAccountName={login}))
  group_attribute: ""
  group_base_dn: ou=groups,dc=dgfip,dc=test
  local_logins: '(-xt|\.ext)$'
  timeout: 3s
  pool_size: 8
`)
	c, err = config.Load(p, env(map[string]string{"PIGP_LDAP_BIND_PASSWORD_FILE": "/run/secrets/ldap"}))
	if err != nil {
		t.Fatal(err)
	}
	l := c.LDAP
	if !l.Enabled() || l.StartTLS || l.GroupAttribute != "" || l.PoolSize != 8 || l.Timeout.Std() != 3*time.Second ||
		l.LocalLogins != `(-xt|\.ext)$` || l.UserFilter != "(&(objectClass=user)(sAMAccountName={login}))" ||
		l.DialTimeout.Std() != 5*time.Second {
		t.Fatalf("LDAP = %+v", l)
	}
	// The environment's password file replaces the YAML password.
	if l.BindPassword != "" || l.BindPasswordFile != "/run/secrets/ldap" {
		t.Fatalf("bind password %q, file %q", l.BindPassword, l.BindPasswordFile)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := l.Directory()
	if d.URL != l.URL || d.GroupBaseDN != l.GroupBaseDN || d.Timeout != 3*time.Second || d.StartTLS {
		t.Fatalf("Directory() = %+v", d)
	}

	c.LDAP.BaseDN = ""
	var ve *config.ValidationError
	c.LDAP.BindPassword, c.LDAP.BindPasswordFile = "yaml-secret", ""
	err = c.Validate()
	if !errors.As(err, &ve) || ve.Field != "ldap.base_dn" {
		t.Fatalf("missing base_dn: %v", err)
	}
	if strings.Contains(err.Error(), "yaml-secret") {
		t.Fatal("validation error shows the password")
	}
	c.LDAP.BaseDN, c.LDAP.URL = "dc=x", "http://annuaire"
	if err := c.Validate(); !errors.As(err, &ve) || ve.Field != "ldap.url" {
		t.Fatalf("bad url: %v", err)
	}
}

func TestLoad_Limits(t *testing.T) {
	path := writeFile(t, `
memory_limit: 512MiB
auth:
  max_concurrent_hashes: 6
  hash_queue: 50
  hash_wait: 3s
  release_memory: false
  max_unauthenticated_per_ip: 80
limits:
  max_open_handles: 200
  max_uploads_per_account: 60
  max_sessions_per_account: 70
  max_open_files: 5000
  reserved_descriptors: 100
  requests_in_flight: 32
  release_memory: false
audit:
  max_detailed_refusals: 5
  refusal_summary_after: 2m
`)
	c, err := config.Load(path, env(map[string]string{"PIGP_MAX_CONCURRENT_HASHES": "8", "PIGP_MAX_OPEN_FILES": "6000"}))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.MemoryLimit = 512 << 20
	want.Auth = config.Auth{MaxConcurrentHashes: 8, HashQueue: 50, HashWait: config.Duration(3 * time.Second),
		MaxUnauthenticatedPerIP: 80}
	want.Limits = config.Limits{MaxOpenHandles: 200, MaxUploadsPerAccount: 60, MaxSessionsPerAccount: 70,
		MaxOpenFiles: 6000, ReservedDescriptors: 100, RequestsInFlight: 32}
	want.Audit = config.Audit{MaxDetailedRefusals: 5, RefusalSummaryAfter: config.Duration(2 * time.Minute)}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load("", env(map[string]string{"PIGP_MEMORY_LIMIT": "lots"})); err == nil {
		t.Fatal("PIGP_MEMORY_LIMIT=lots accepted")
	}
}

func TestLoad_Storage(t *testing.T) {
	c := config.Default()
	if c.Storage.Kind != "fs" || c.Storage.S3() || c.Storage.PartSize != 16<<20 || c.Storage.MultipartThreshold != 64<<20 ||
		c.Storage.Concurrency != 4 || c.Storage.MaxAttempts != 4 || c.Storage.RequestTimeout.Std() != 2*time.Minute {
		t.Fatalf("Default().Storage = %+v", c.Storage)
	}

	dir := t.TempDir()
	secret := filepath.Join(dir, "s3_secret")
	os.WriteFile(secret, []byte("file-secret\n"), 0o600)
	path := writeFile(t, `
storage:
  kind: s3
  endpoint: https://s3.gra.io.cloud.ovh.net
  region: gra
  bucket: pigp-prod
  prefix: dept/
  access_key: AKIAYAML
  secret_key_file: `+secret+`
  path_style: true
  tls_ca: /etc/pigp/ca.pem
  quota: 2GiB
  part_size: 32MiB
  multipart_threshold: 128MiB
  concurrency: 8
  max_attempts: 6
  request_timeout: 30s
`)
	c, err := config.Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := config.Storage{
		Kind: "s3", Endpoint: "https://s3.gra.io.cloud.ovh.net", Region: "gra", Bucket: "pigp-prod", Prefix: "dept/",
		AccessKey: "AKIAYAML", SecretKey: "file-secret", SecretKeyFile: secret, PathStyle: true, TLSCA: "/etc/pigp/ca.pem",
		Quota: 2 << 30, PartSize: 32 << 20, MultipartThreshold: 128 << 20, Concurrency: 8, MaxAttempts: 6,
		RequestTimeout: config.Duration(30 * time.Second),
	}
	if !reflect.DeepEqual(c.Storage, want) {
		t.Fatalf("Storage = %+v\nwant      %+v", c.Storage, want)
	}

	// The environment wins over the file; its secret key replaces the file's.
	c, err = config.Load(path, env(map[string]string{
		"PIGP_STORAGE_KIND": "s3", "PIGP_S3_ENDPOINT": "http://127.0.0.1:7070", "PIGP_S3_BUCKET": "other",
		"PIGP_S3_REGION": "eu-west-3", "PIGP_S3_PREFIX": "p2", "PIGP_S3_ACCESS_KEY": "AKIAENV",
		"PIGP_S3_SECRET_KEY": "env-secret", "PIGP_S3_PATH_STYLE": "false", "PIGP_S3_TLS_CA": "/ca2.pem",
		"PIGP_S3_QUOTA": "500MB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := c.Storage
	if s.Endpoint != "http://127.0.0.1:7070" || s.Bucket != "other" || s.Region != "eu-west-3" || s.Prefix != "p2" ||
		s.AccessKey != "AKIAENV" || s.SecretKey != "env-secret" || s.SecretKeyFile != "" || s.PathStyle ||
		s.TLSCA != "/ca2.pem" || s.Quota != 500e6 {
		t.Fatalf("Storage from the environment = %+v", s)
	}

	// Without keys, the AWS chain supplies the credentials: valid.
	c, err = config.Load("", env(map[string]string{"PIGP_STORAGE_KIND": "s3", "PIGP_S3_BUCKET": "pigp"}))
	if err != nil || c.Validate() != nil {
		t.Fatalf("s3 without keys: %v, %v", err, c.Validate())
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"bad path_style":  {map[string]string{"PIGP_S3_PATH_STYLE": "yes please"}, "PIGP_S3_PATH_STYLE"},
		"bad quota":       {map[string]string{"PIGP_S3_QUOTA": "lots"}, "PIGP_S3_QUOTA"},
		"missing secret":  {map[string]string{"PIGP_S3_SECRET_KEY_FILE": filepath.Join(dir, "nope")}, "storage.secret_key_file"},
		"empty secret":    {map[string]string{"PIGP_S3_SECRET_KEY_FILE": writeFile(t, "\n")}, "empty"},
		"unknown kind":    {map[string]string{"PIGP_STORAGE_KIND": "nfs"}, "storage.kind"},
		"no bucket":       {map[string]string{"PIGP_STORAGE_KIND": "s3"}, "storage.bucket"},
		"access key only": {map[string]string{"PIGP_STORAGE_KIND": "s3", "PIGP_S3_BUCKET": "pigp", "PIGP_S3_ACCESS_KEY": "AK"}, "storage.access_key"},
		"secret only":     {map[string]string{"PIGP_STORAGE_KIND": "s3", "PIGP_S3_BUCKET": "pigp", "PIGP_S3_SECRET_KEY": "x"}, "storage.access_key"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load("", env(tc.env))
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}

	t.Run("both secrets in the file", func(t *testing.T) {
		_, err := config.Load(writeFile(t, "storage: {kind: s3, bucket: pigp, access_key: a, secret_key: b, secret_key_file: "+secret+"}\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), "exclude each other") {
			t.Fatalf("Load = %v, want secret_key and secret_key_file refused together", err)
		}
	})
}

func TestStorage_Validate(t *testing.T) {
	s3 := func(c *config.Config) {
		c.Storage.Kind, c.Storage.Bucket = "s3", "pigp-data"
	}
	tests := []struct {
		name, field string
		change      func(s *config.Storage)
	}{
		{"kind", "storage.kind", func(s *config.Storage) { s.Kind = "S3" }},
		{"no bucket", "storage.bucket", func(s *config.Storage) { s.Bucket = "" }},
		{"short bucket", "storage.bucket", func(s *config.Storage) { s.Bucket = "ab" }},
		{"upper-case bucket", "storage.bucket", func(s *config.Storage) { s.Bucket = "Pigp" }},
		{"bucket with a slash", "storage.bucket", func(s *config.Storage) { s.Bucket = "pigp/data" }},
		{"bucket ending with a hyphen", "storage.bucket", func(s *config.Storage) { s.Bucket = "pigp-" }},
		{"IP bucket", "storage.bucket", func(s *config.Storage) { s.Bucket = "192.168.1.1" }},
		{"endpoint without scheme", "storage.endpoint", func(s *config.Storage) { s.Endpoint = "s3.example.fr" }},
		{"endpoint ftp", "storage.endpoint", func(s *config.Storage) { s.Endpoint = "ftp://s3.example.fr" }},
		{"endpoint with the bucket", "storage.endpoint", func(s *config.Storage) { s.Endpoint = "https://s3.example.fr/pigp" }},
		{"endpoint with credentials", "storage.endpoint", func(s *config.Storage) { s.Endpoint = "https://ak:hunter2@s3.example.fr" }},
		{"prefix", "storage.prefix", func(s *config.Storage) { s.Prefix = "Pigp/../x" }},
		{"quota", "storage.quota", func(s *config.Storage) { s.Quota = -1 }},
		{"part size", "storage.part_size", func(s *config.Storage) { s.PartSize = 1 << 20 }},
		{"threshold", "storage.multipart_threshold", func(s *config.Storage) { s.MultipartThreshold = 8 << 20 }},
		{"concurrency", "storage.concurrency", func(s *config.Storage) { s.Concurrency = 0 }},
		{"attempts", "storage.max_attempts", func(s *config.Storage) { s.MaxAttempts = 0 }},
		{"timeout", "storage.request_timeout", func(s *config.Storage) { s.RequestTimeout = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			s3(&c)
			tt.change(&c.Storage)
			err := c.Validate()
			var ve *config.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Validate() = %v, want a *ValidationError on %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Validate() = %v shows the endpoint's password", err)
			}
		})
	}
	// The S3 settings are not checked for the filesystem store.
	c := config.Default()
	c.Storage.Bucket, c.Storage.PartSize = "X", 1
	if err := c.Validate(); err != nil {
		t.Fatalf("fs with stray S3 settings: %v", err)
	}
	for _, ok := range []func(s *config.Storage){
		func(s *config.Storage) { s.Endpoint = "http://127.0.0.1:7070" },
		func(s *config.Storage) { s.Endpoint = "https://s3.example.fr/" },
		func(s *config.Storage) { s.Bucket = "pigp.data-01" },
		func(s *config.Storage) { s.Prefix = "/dept/2026/" },
		func(s *config.Storage) { s.AccessKey, s.SecretKey = "ak", "sk" },
	} {
		c := config.Default()
		s3(&c)
		ok(&c.Storage)
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c.Storage, err)
		}
	}
}
