package main

import (
	"context"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/scheduler"
)

// samples is one scrape: "name{a="x",b="y"}" (labels sorted) → value.
type samples map[string]float64

// scrapeMetrics GETs a /metrics URL and parses the text exposition.
func scrapeMetrics(t *testing.T, url string) (samples, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	out := samples{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out, string(body)
}

// TestMetricsCountEachEvent scrapes /metrics before and after one deposit,
// one refused deposit, one download and one failed login (and one
// processing run and one job run), and checks that each counter moved by
// exactly what happened.
func TestMetricsCountEachEvent(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, func(c *config.Config) { c.MetricsListen = "127.0.0.1:0" })
			url := "http://" + e.app.MetricsServer.Addr().String() + "/metrics"
			resp := e.publish(siretA, "reponse-metriques.xml", []byte("<ReponseAPA/>"))
			before, _ := scrapeMetrics(t, url)
			for _, name := range []string{"pigp_deposits_waiting", "pigp_responses_available", "pigp_sftp_sessions",
				"pigp_database_up", "pigp_store_free_bytes", `pigp_password_expiring_accounts{days="7"}`,
				`pigp_password_expiring_accounts{days="30"}`, "go_goroutines", "process_resident_memory_bytes",
				"pigp_processing_seconds_count"} {
				if _, ok := before[name]; !ok {
					t.Errorf("%s missing from the scrape", name)
				}
			}
			if before["pigp_responses_available"] != 1 || before["pigp_deposits_waiting"] != 0 || before["pigp_database_up"] != 1 {
				t.Errorf("before: %v responses, %v waiting, database up %v; want 1, 0, 1", before["pigp_responses_available"],
					before["pigp_deposits_waiting"], before["pigp_database_up"])
			}

			c, conn := e.dialSFTP("alice-xt", e.alice) // one successful login
			data := randomBytes(1000)
			f, err := c.Create("/depot/" + callName(siretA, 1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("deposit: %v", err)
			}
			if _, err := c.Create("/depot/pas-un-fichier-d-appel.xml"); err == nil {
				t.Fatal("a badly named deposit was accepted")
			}
			rf, err := c.Open("/retrait/" + resp.Name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(rf); err != nil {
				t.Fatal(err)
			}
			rf.Close()
			during, _ := scrapeMetrics(t, url)
			if during["pigp_sftp_sessions"] != 1 {
				t.Errorf("pigp_sftp_sessions = %v during the session, want 1", during["pigp_sftp_sessions"])
			}
			c.Close()
			conn.Close()
			if _, err := ssh.Dial("tcp", e.addr, sshConfig("alice-xt", "Pas-Le-Bon-Mot-De-Passe-1")); err == nil {
				t.Fatal("a wrong password was accepted")
			}
			// The session gauge falls once the server has seen the end.
			var after samples
			var body string
			for deadline := time.Now().Add(30 * time.Second); ; {
				after, body = scrapeMetrics(t, url)
				if after["pigp_sftp_sessions"] == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			want := map[string]float64{
				`pigp_deposits_total{result="accepted"}`:                  1,
				`pigp_deposits_total{result="refused"}`:                   1,
				`pigp_deposits_total{result="error"}`:                     0,
				"pigp_deposit_bytes_total":                                1000,
				"pigp_downloads_total":                                    1,
				`pigp_logins_total{protocol="sftp",result="success"}`:     1,
				`pigp_logins_total{protocol="sftp",result="failure"}`:     1,
				`pigp_logins_total{protocol="sftp",result="expired"}`:     0,
				`pigp_logins_total{protocol="https",result="failure"}`:    0,
				`pigp_logins_total{protocol="https",result="success"}`:    0,
				"pigp_deposits_waiting":                                   1,
				"pigp_responses_available":                                0,
				"pigp_sftp_sessions":                                      0,
				"pigp_processing_seconds_count":                           0,
				`pigp_processing_requests_total{outcome="found"}`:         0,
				`pigp_job_runs_total{job_name="menage",result="success"}`: 0,
			}
			checkDeltas(t, before, after, want)

			// One processing run: random bytes are refused as a whole
			// (CompteRenduAPA), which is an answer too.
			if s, err := e.app.Process.Run(context.Background()); err != nil || s.Rejected != 1 {
				t.Fatalf("processing: %+v, %v", s, err)
			}
			// One job run, through the scheduler as the timer would.
			var job scheduler.Job
			for _, j := range e.app.jobs() {
				if j.Name == jobHousekeeping {
					job = j
				}
			}
			sch := &scheduler.Scheduler{Store: e.app.DB, Metrics: e.app.Metrics}
			now := time.Now()
			if _, err := sch.RunJob(context.Background(), job, now, now.Truncate(time.Second)); err != nil {
				t.Fatal(err)
			}
			final, _ := scrapeMetrics(t, url)
			checkDeltas(t, after, final, map[string]float64{
				"pigp_processing_seconds_count":                               1,
				"pigp_deposits_waiting":                                       -1,
				"pigp_responses_available":                                    1,
				`pigp_deposits_total{result="accepted"}`:                      0,
				`pigp_job_runs_total{job_name="menage",result="success"}`:     1,
				`pigp_job_runs_total{job_name="menage",result="failure"}`:     0,
				`pigp_job_runs_total{job_name="traitement",result="success"}`: 0,
			})
			last := final[`pigp_job_last_success_timestamp_seconds{job_name="menage"}`]
			if last < float64(now.Add(-time.Minute).Unix()) {
				t.Errorf("pigp_job_last_success_timestamp_seconds{job_name=menage} = %v, want about %d", last, now.Unix())
			}

			// Labels carry no login, SIRET, address or file name.
			for _, private := range []string{"alice-xt", siretA, "127.0.0.1", resp.Name, "Agent "} {
				if strings.Contains(body, private) {
					t.Errorf("the scrape contains %q", private)
				}
			}
			// The exposition passes Prometheus' own linter.
			if _, err := exec.LookPath("promtool"); err == nil || os.Getenv("CI") == "true" {
				needTool(t, "promtool")
				cmd := exec.Command("promtool", "check", "metrics")
				cmd.Stdin = strings.NewReader(body)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
				}
			}
		})
	}
	// pigp's metrics live on its private registry only.
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "pigp_") {
			t.Errorf("%s is on the global default registry", f.GetName())
		}
	}
}

func checkDeltas(t *testing.T, before, after samples, want map[string]float64) {
	t.Helper()
	for name, d := range want {
		b, okb := before[name]
		a, oka := after[name]
		if !okb || !oka {
			t.Errorf("%s missing from a scrape (before %v, after %v)", name, okb, oka)
			continue
		}
		if a-b != d {
			t.Errorf("%s moved by %v (%v → %v), want %v", name, a-b, b, a, d)
		}
	}
}

// TestMetricsResultLabels: a login refused by the throttle counts as
// throttled, a retried deposit as duplicate, and the portal's logins by
// the scheme the browser used: https behind a trusted TLS proxy that says
// so (X-Forwarded-Proto), http when reached directly.
func TestMetricsResultLabels(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.MetricsListen, c.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
		c.HTTPTrustedProxies = []string{"127.0.0.2"}
		c.Throttle.PairFreeFailures, c.Throttle.BaseDelay = 0, config.Duration(time.Hour)
	})
	if err := e.app.StartWeb(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
	url := "http://" + e.app.MetricsServer.Addr().String() + "/metrics"
	before, _ := scrapeMetrics(t, url)

	// The first wrong password blocks the pair; the next attempt is
	// refused unchecked.
	for range 2 {
		if c, _, err := e.dialFrom("127.0.9.1", "bob-xt", ssh.Password("Pas-Le-Bon-Mot-De-Passe-1")); err == nil {
			c.Close()
			t.Fatal("a wrong password was accepted")
		}
	}
	// The same file deposited twice: the second is a retry.
	c, conn := e.dialSFTP("alice-xt", e.alice)
	data, name := randomBytes(100), "/depot/"+callName(siretA, 1)
	for range 2 {
		f, err := c.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("deposit: %v", err)
		}
	}
	c.Close()
	conn.Close()
	// Portal logins, from the trusted proxy's address saying HTTPS, and
	// directly.
	portalLogin(t, "http://"+e.app.Web.ListenAddr().String(), "127.0.0.2", http.Header{"X-Forwarded-Proto": {"https"}}, "alice-xt", e.alice)
	portalLogin(t, "http://"+e.app.Web.ListenAddr().String(), "127.0.0.3", http.Header{"X-Forwarded-Proto": {"https"}}, "bob-xt", e.bob)

	after, _ := scrapeMetrics(t, url)
	checkDeltas(t, before, after, map[string]float64{
		`pigp_logins_total{protocol="sftp",result="failure"}`:   1,
		`pigp_logins_total{protocol="sftp",result="throttled"}`: 1,
		`pigp_logins_total{protocol="sftp",result="success"}`:   1,
		`pigp_logins_total{protocol="https",result="success"}`:  1,
		`pigp_logins_total{protocol="http",result="success"}`:   1, // the untrusted peer's header is ignored
		`pigp_deposits_total{result="accepted"}`:                1,
		`pigp_deposits_total{result="duplicate"}`:               1,
		`pigp_deposits_total{result="refused"}`:                 0,
	})
	if _, ok := after[`pigp_logins_total{protocol="other",result="success"}`]; ok {
		t.Error(`a login counted under protocol="other"`)
	}
}

// portalLogin logs login in on the portal from the local address src,
// with header on each request, keeping the cookies by hand (a jar would
// not send a Secure cookie over http://).
func portalLogin(t *testing.T, base, src string, header http.Header, login, password string) {
	t.Helper()
	client := &http.Client{Timeout: time.Minute,
		Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", base+"/connexion", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := portalCSRF.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no CSRF token in the login page:\n%s", body)
	}
	form := neturl.Values{"csrf": {m[1]}, "identifiant": {login}, "motdepasse": {password}}
	req, _ = http.NewRequest("POST", base+"/connexion", strings.NewReader(form.Encode()))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal login %s from %s: %d\n%s", login, src, resp.StatusCode, body)
	}
}
