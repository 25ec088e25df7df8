package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/metrics"
)

// repoFile reads a file at the repository's root.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSystemdUnit checks deploy/pigp.service with systemd's own tools:
// `systemd-analyze verify` (syntax, directives, executable) must say
// nothing, and `systemd-analyze security` must rate the sandbox "OK" or
// better. verify needs the ExecStart binary: the copy checked points it at
// this test's executable, everything else unchanged.
func TestSystemdUnit(t *testing.T) {
	needTool(t, "systemd-analyze")
	unit := repoFile(t, "deploy/pigp.service")
	for _, d := range []string{"DynamicUser=yes", "StateDirectory=pigp", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"\nCapabilityBoundingSet=\n", "Restart=on-failure", "LimitNOFILE=", "ExecStart=/usr/local/bin/pigp serve"} {
		if !strings.Contains(unit, d) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(d))
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pigp.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/pigp", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for pigp\.service: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if m == nil || (m[2] != "OK" && m[2] != "SAFE") {
		t.Fatalf("systemd-analyze security does not rate the unit OK:\n%s", out)
	}
	t.Logf("systemd exposure level %s %s", m[1], m[2])
}

// TestDeployPrometheusRules runs promtool on the alert rules: syntax, then
// the rules' unit tests (deploy/prometheus-alerts.test.yaml).
func TestDeployPrometheusRules(t *testing.T) {
	needTool(t, "promtool")
	deploy := filepath.Join("..", "..", "deploy")
	for _, args := range [][]string{{"check", "rules", "prometheus-alerts.yaml"}, {"test", "rules", "prometheus-alerts.test.yaml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = deploy
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exposedMetrics returns the names of every series family pigp exposes
// (histograms with their _bucket, _sum and _count).
func exposedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	now := time.Now()
	jobs := []string{jobProcessing, jobExpiry, jobPasswords, jobNotify, jobHousekeeping}
	last := map[string]time.Time{}
	for _, j := range jobs {
		last[j] = now
	}
	m := metrics.New(metrics.Options{Source: statsFunc(func() *pigp.Stats {
		return &pigp.Stats{DepositsWaiting: 1, OldestWaiting: now, PasswordsExpiring: map[int]int64{7: 1}, JobLastSuccess: last}
	}), Jobs: jobs, ExpiringDays: []int{7}, StoreDir: t.TempDir()})
	m.DepositProcessed(time.Second, 1, 0, 0, 0)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		out[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[f.GetName()+s] = true
			}
		}
	}
	return out
}

type statsFunc func() *pigp.Stats

func (f statsFunc) Stats(context.Context, time.Time, []int, []string) (*pigp.Stats, error) {
	return f(), nil
}

var metricName = regexp.MustCompile(`\b(?:pigp|go|process)_[a-z0-9_]+\b`)

// TestDeployMetricNames: every metric the dashboard and the alert rules
// query is one pigp exposes, and every pigp metric is on the dashboard.
func TestDeployMetricNames(t *testing.T) {
	exposed := exposedMetrics(t)
	for _, name := range []string{"pigp_deposits_total", "pigp_deposit_bytes_total", "pigp_downloads_total",
		"pigp_logins_total", "pigp_sftp_sessions", "pigp_processing_seconds", "pigp_processing_requests_total",
		"pigp_job_runs_total", "pigp_job_last_success_timestamp_seconds", "pigp_deposits_waiting",
		"pigp_responses_available", "pigp_password_expiring_accounts", "go_goroutines", "process_cpu_seconds_total"} {
		if !exposed[name] {
			t.Errorf("%s is not exposed", name)
		}
	}
	dash := repoFile(t, "deploy/grafana-dashboard.json")
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(dash), &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	onDashboard := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				onDashboard[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
				if !exposed[n] {
					t.Errorf("dashboard panel %q queries %s, which pigp does not expose", p.Title, n)
				}
			}
		}
	}
	for n := range exposed {
		if strings.HasPrefix(n, "pigp_") && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") &&
			!strings.HasSuffix(n, "_bucket") && !onDashboard[n] && n != "pigp_build_info" {
			t.Errorf("%s is on no dashboard panel", n)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal([]byte(repoFile(t, "deploy/prometheus-alerts.yaml")), &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range metricName.FindAllString(r.Expr, -1) {
				if !exposed[n] {
					t.Errorf("alert %s queries %s, which pigp does not expose", r.Alert, n)
				}
			}
		}
	}
}

// TestDockerfile checks what a container build would rely on, since no
// container engine runs here: the build flags are those TestImageRoot
// uses, the final image is minimal and runs as a numeric non-root user
// with /data as its volume, exposes the configured ports and checks its
// health with the binary; every PIGP_ variable it sets exists.
func TestDockerfile(t *testing.T) {
	df := repoFile(t, "Dockerfile")
	for _, flag := range append([]string{"CGO_ENABLED=0 go build"}, imageBuildArgs[1:len(imageBuildArgs)-1]...) {
		if !strings.Contains(df, flag) {
			t.Errorf("the Dockerfile's build lacks %s", flag)
		}
	}
	m := regexp.MustCompile(`-ldflags="([^"]*)"`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("no -ldflags in the Dockerfile")
	}
	if got := strings.NewReplacer("${VERSION}", imageVersion, "${COMMIT}", imageCommit).Replace(m[1]); got != imageLDFlags {
		t.Errorf("Dockerfile -ldflags %q, TestImageRoot builds with %q", got, imageLDFlags)
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatal("the Dockerfile is not multi-stage")
	}
	if final := froms[len(froms)-1][1]; !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final image %s: want distroless/static or scratch", final)
	}
	if !regexp.MustCompile(`(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`).MatchString(df) {
		t.Error("the image does not run as a numeric non-root user")
	}
	if !regexp.MustCompile(`(?m)^VOLUME \["/data"\]$`).MatchString(df) || !strings.Contains(df, "PIGP_DATA_DIR=/data") {
		t.Error("/data is not the volume and the data directory")
	}
	if !regexp.MustCompile(`(?m)^\s*CMD \["/usr/local/bin/pigp", "healthcheck"`).MatchString(df) {
		t.Error("the HEALTHCHECK does not run pigp healthcheck")
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(df)
	for _, v := range []string{"PIGP_SFTP_LISTEN", "PIGP_HTTP_LISTEN"} {
		m := regexp.MustCompile(v + `=:(\d+)`).FindStringSubmatch(df)
		if m == nil || expose == nil || !slices.Contains(strings.Fields(expose[1]), m[1]) {
			t.Errorf("%s's port is not exposed", v)
		}
	}
	checkEnvNames(t, "Dockerfile", df)
	di := repoFile(t, ".dockerignore")
	for _, p := range []string{".git", "/data/", "/secrets/"} {
		if !strings.Contains(di, p+"\n") {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// checkEnvNames fails for every PIGP_ variable of text that pigp does not read.
func checkEnvNames(t *testing.T, file, text string) {
	t.Helper()
	known := config.EnvNames()
	for _, n := range regexp.MustCompile(`\bPIGP_[A-Z0-9_]+`).FindAllString(text, -1) {
		if !slices.Contains(known, n) && n != "PIGP_VERSION" && n != "PIGP_COMMIT" && n != "PIGP_DB_PASSWORD" {
			t.Errorf("%s sets %s, which pigp does not read", file, n)
		}
	}
}

// TestComposeS3 checks compose.s3.yaml, the override that puts contents in
// a bucket: pigp depends on the s3 service, reaches it by its name, shares
// its secret, and the configuration it gets loads and validates.
func TestComposeS3(t *testing.T) {
	text := repoFile(t, "compose.s3.yaml")
	var c struct {
		Services map[string]struct {
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Environment map[string]string                     `yaml:"environment"`
			Secrets     []string                              `yaml:"secrets"`
			Entrypoint  []string                              `yaml:"entrypoint"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatal(err)
	}
	s3, pg := c.Services["s3"], c.Services["pigp"]
	env := pg.Environment
	if _, ok := pg.DependsOn["s3"]; !ok || env["PIGP_STORAGE_KIND"] != "s3" || !strings.HasPrefix(env["PIGP_S3_ENDPOINT"], "http://s3:") {
		t.Fatalf("pigp is not wired to the s3 service: %+v", pg)
	}
	if !slices.Contains(pg.Secrets, "s3_secret_key") || !slices.Contains(pg.Secrets, "db_password") || !slices.Contains(s3.Secrets, "s3_secret_key") || c.Secrets["s3_secret_key"].File == "" {
		t.Error("s3_secret_key is not a secret of both services (or pigp lost db_password)")
	}
	if len(s3.Entrypoint) == 0 || !strings.Contains(strings.Join(s3.Entrypoint, " "), "mkdir -p /data/"+env["PIGP_S3_BUCKET"]) {
		t.Errorf("the gateway does not create the bucket %q: %v", env["PIGP_S3_BUCKET"], s3.Entrypoint)
	}
	checkEnvNames(t, "compose.s3.yaml", text)
	dir := t.TempDir()
	secret := filepath.Join(dir, "s3_secret_key")
	os.WriteFile(secret, []byte("s3cr3t-s3cr3t\n"), 0o600)
	cfg, err := config.Load("", func(k string) string {
		if k == "PIGP_S3_SECRET_KEY_FILE" {
			return secret
		}
		return env[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("compose.s3.yaml's settings do not validate: %v", err)
	}
	if cfg.Storage.Kind != "s3" || cfg.Storage.SecretKey != "s3cr3t-s3cr3t" || !cfg.Storage.PathStyle {
		t.Errorf("loaded storage settings: kind %q, secret read %v, path style %v", cfg.Storage.Kind, cfg.Storage.SecretKey == "s3cr3t-s3cr3t", cfg.Storage.PathStyle)
	}
}

// TestCompose checks compose.yaml's structure: pigp waits for a healthy
// PostgreSQL, the database password is a secret shared by both, pigp has
// a health check through the binary, every PIGP_ variable exists.
func TestCompose(t *testing.T) {
	text := repoFile(t, "compose.yaml")
	var c struct {
		Services map[string]struct {
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Environment map[string]string `yaml:"environment"`
			Secrets     []string          `yaml:"secrets"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatal(err)
	}
	pg, pgOK := c.Services["postgres"]
	pigpSvc, ok := c.Services["pigp"]
	if !ok || !pgOK {
		t.Fatalf("services: want pigp and postgres")
	}
	if pigpSvc.DependsOn["postgres"].Condition != "service_healthy" || len(pg.Healthcheck.Test) == 0 {
		t.Error("pigp does not wait for a healthy PostgreSQL")
	}
	if !slices.Equal(pigpSvc.Healthcheck.Test[:3], []string{"CMD", "/usr/local/bin/pigp", "healthcheck"}) {
		t.Errorf("pigp's health check: %v", pigpSvc.Healthcheck.Test)
	}
	url := pigpSvc.Environment["PIGP_DATABASE_URL"]
	if !strings.HasPrefix(url, "postgres://pigp@postgres:") || pigpSvc.Environment["PIGP_DATABASE_PASSWORD_FILE"] != "/run/secrets/db_password" ||
		pg.Environment["POSTGRES_PASSWORD_FILE"] != "/run/secrets/db_password" {
		t.Errorf("the database password is not the shared secret file (url %q)", url)
	}
	if !slices.Contains(pigpSvc.Secrets, "db_password") || !slices.Contains(pg.Secrets, "db_password") || c.Secrets["db_password"].File == "" {
		t.Error("db_password is not a secret of both services")
	}
	if !slices.Contains(pigpSvc.Volumes, "pigp-data:/data") {
		t.Error("pigp's /data is not a volume")
	}
	if !strings.Contains(text, "S3") {
		t.Error("compose.yaml keeps no place for the S3 server")
	}
	checkEnvNames(t, "compose.yaml", text)
	// The secret file scheme works: a URL without password plus the file.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "db_password"), []byte("s3cr3t\n"), 0o600)
	cfg, err := config.Load("", func(k string) string {
		switch k {
		case "PIGP_DATABASE_PASSWORD_FILE":
			return filepath.Join(dir, "db_password")
		case "PIGP_DATABASE_URL":
			return url
		}
		return ""
	})
	if err != nil || cfg.Validate() != nil {
		t.Fatalf("compose's database settings do not load: %v %v", err, cfg.Validate())
	}
	if _, dsn := cfg.Database(); !strings.Contains(dsn, "pigp:s3cr3t@postgres") {
		t.Errorf("dsn %q lacks the secret", dsn)
	}
}

// TestDeployHAProxyExample: the HAProxy configuration of
// docs/exploitation.md passes `haproxy -c` (its certificate and socket
// moved to the test's directory), and balances SFTP by source address
// with consistent hashing, as the guide explains.
func TestDeployHAProxyExample(t *testing.T) {
	needTool(t, "haproxy")
	doc := repoFile(t, "docs/exploitation.md")
	m := regexp.MustCompile("(?s)```haproxy\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/exploitation.md has no haproxy block")
	}
	cfg := m[1]
	sftp := cfg[strings.Index(cfg, "backend pigp_sftp"):strings.Index(cfg, "frontend portail")]
	if !strings.Contains(sftp, "balance source") || !strings.Contains(sftp, "hash-type consistent") || !strings.Contains(sftp, "send-proxy-v2") {
		t.Errorf("SFTP backend of the example:\n%s", sftp)
	}
	dir := t.TempDir()
	cfg = strings.NewReplacer(
		"bind :443 ssl crt /etc/haproxy/certs/portail.pem alpn h2,http/1.1", "bind 127.0.0.1:443",
		"/run/haproxy/admin.sock", filepath.Join(dir, "admin.sock"),
	).Replace(cfg)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}
