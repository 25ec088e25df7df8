package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pigp/pigp"
)

type fakeSource struct {
	stats *pigp.Stats
	err   error
}

func (f *fakeSource) Stats(context.Context, time.Time, []int, []string) (*pigp.Stats, error) {
	return f.stats, f.err
}

func TestStateGauges(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	src := &fakeSource{stats: &pigp.Stats{
		DepositsWaiting: 3, OldestWaiting: now.Add(-90 * time.Second), ResponsesAvailable: 7,
		PasswordsExpiring: map[int]int64{30: 4, 7: 1},
		JobLastSuccess:    map[string]time.Time{"traitement": now.Add(-time.Minute)},
	}}
	m := New(Options{Source: src, Jobs: []string{"traitement", "menage"}, ExpiringDays: []int{30, 7},
		StoreDir: t.TempDir(), Now: func() time.Time { return now }})
	want := `
# HELP pigp_deposits_oldest_waiting_seconds Age of the oldest deposit not answered yet (0 when none waits).
# TYPE pigp_deposits_oldest_waiting_seconds gauge
pigp_deposits_oldest_waiting_seconds 90
# HELP pigp_deposits_waiting Deposits not answered yet (RECU or EN_COURS), on every node.
# TYPE pigp_deposits_waiting gauge
pigp_deposits_waiting 3
# HELP pigp_job_last_success_timestamp_seconds When the job last finished without error, on any node (Unix time; absent: never).
# TYPE pigp_job_last_success_timestamp_seconds gauge
pigp_job_last_success_timestamp_seconds{job_name="traitement"} 1.77244554e+09
# HELP pigp_password_expiring_accounts Active accounts whose password expires within the given number of days.
# TYPE pigp_password_expiring_accounts gauge
pigp_password_expiring_accounts{days="30"} 4
pigp_password_expiring_accounts{days="7"} 1
# HELP pigp_responses_available Responses and reports available in every /retrait, not expired.
# TYPE pigp_responses_available gauge
pigp_responses_available 7
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "pigp_deposits_waiting",
		"pigp_deposits_oldest_waiting_seconds", "pigp_responses_available", "pigp_password_expiring_accounts",
		"pigp_job_last_success_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "pigp_store_free_bytes", "pigp_store_size_bytes"); err != nil || n != 2 {
		t.Fatalf("store space gauges: %d, %v", n, err)
	}

	// A database that does not answer: pigp_database_up says so, and the
	// rest of the scrape still works.
	src.err = errors.New("connection refused")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "pigp_database_up 0") ||
		!strings.Contains(rec.Body.String(), "go_goroutines") || strings.Contains(rec.Body.String(), "pigp_deposits_waiting ") {
		t.Fatalf("scrape with the database down: %d\n%s", rec.Code, rec.Body.String())
	}
}

func TestCountersStayBounded(t *testing.T) {
	m := New(Options{Jobs: []string{"traitement"}})
	m.Login("SFTP", LoginSuccess)
	m.Login("telnet", LoginFailure) // not a protocol pigp has: "other"
	m.JobRun("traitement", false)
	m.JobRun("not-a-job", true) // ignored: the label stays bounded
	m.Deposit(DepositAccepted, 512)
	m.Deposit(DepositRefused, 0)
	m.DepositProcessed(1500*time.Millisecond, 5, 2, 1, 0)
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.logins.WithLabelValues("sftp", LoginSuccess)), 1, "sftp success"},
		{testutil.ToFloat64(m.logins.WithLabelValues("other", LoginFailure)), 1, "other failure"},
		{testutil.ToFloat64(m.jobRuns.WithLabelValues("traitement", JobFailure)), 1, "job failure"},
		{testutil.ToFloat64(m.depositBytes), 512, "deposit bytes"},
		{testutil.ToFloat64(m.deposits.WithLabelValues(DepositRefused)), 1, "refused deposits"},
		{testutil.ToFloat64(m.requests.WithLabelValues("found")), 5, "found requests"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.jobRuns); n != 2 {
		t.Errorf("pigp_job_runs_total has %d series, want 2 (one job, two results)", n)
	}
}

// TestLoginProtocolLabels: each protocol of pigp has its own label (the
// portal's logins over HTTP and HTTPS apart), and the throttled and
// duplicate results exist from the start at zero.
func TestLoginProtocolLabels(t *testing.T) {
	m := New(Options{})
	m.Login(pigp.ProtocolSFTP, LoginThrottled)
	m.Login(pigp.ProtocolHTTP, LoginSuccess)
	m.Login(pigp.ProtocolHTTPS, LoginSuccess)
	m.Login(pigp.ProtocolHTTPS, LoginFailure)
	m.Deposit(DepositDuplicate, 0)
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.logins.WithLabelValues("sftp", LoginThrottled)), 1, "sftp throttled"},
		{testutil.ToFloat64(m.logins.WithLabelValues("http", LoginSuccess)), 1, "http success"},
		{testutil.ToFloat64(m.logins.WithLabelValues("https", LoginSuccess)), 1, "https success"},
		{testutil.ToFloat64(m.logins.WithLabelValues("https", LoginFailure)), 1, "https failure"},
		{testutil.ToFloat64(m.logins.WithLabelValues("other", LoginSuccess)), 0, "other success"},
		{testutil.ToFloat64(m.deposits.WithLabelValues(DepositDuplicate)), 1, "duplicate deposits"},
		{testutil.ToFloat64(m.deposits.WithLabelValues(DepositAccepted)), 0, "accepted deposits"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// 3 protocols × 4 results, every one present before any login.
	if n := testutil.CollectAndCount(New(Options{}).logins); n != 12 {
		t.Errorf("pigp_logins_total has %d series at start, want 12", n)
	}
}
