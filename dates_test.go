package pigp_test

import (
	"testing"
	"time"

	"github.com/pigp/pigp"
)

func paris(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, pigp.Paris)
}

func TestFrenchDate(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{paris(2027, 12, 1, 12, 0), "1er décembre 2027"},
		{paris(2027, 12, 1, 0, 30), "1er décembre 2027"}, // 30 November in UTC
		{time.Date(2027, 11, 30, 23, 30, 0, 0, time.UTC), "1er décembre 2027"},
		{paris(2027, 11, 30, 23, 59), "30 novembre 2027"},
		{paris(2027, 9, 23, 8, 0), "23 septembre 2027"},
		{paris(2026, 3, 1, 0, 0), "1er mars 2026"},
		{paris(2026, 8, 2, 0, 0), "2 août 2026"},
		{paris(2027, 1, 11, 0, 0), "11 janvier 2027"},
		{paris(2026, 10, 1, 0, 0), "1er octobre 2026"},
	}
	for _, tt := range tests {
		if got := pigp.FrenchDate(tt.t); got != tt.want {
			t.Errorf("FrenchDate(%s) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

// TestDaysUntil counts whole calendar days in Paris, around the first of a
// month, midnight and both daylight-saving changes (29 March and 25
// October 2026, 28 March and 31 October 2027).
func TestDaysUntil(t *testing.T) {
	tests := []struct {
		name     string
		now, exp time.Time
		want     int
	}{
		{"the issue's page", paris(2027, 11, 11, 8, 0), paris(2027, 12, 1, 7, 0), 20},
		{"early morning to late evening", paris(2027, 11, 1, 0, 1), paris(2027, 11, 20, 23, 59), 19},
		{"late evening to early morning", paris(2027, 11, 1, 23, 59), paris(2027, 11, 21, 0, 0), 20},
		{"today", paris(2027, 12, 1, 0, 0), paris(2027, 12, 1, 23, 59), 0},
		{"tomorrow, a minute away", paris(2027, 11, 30, 23, 59), paris(2027, 12, 1, 0, 0), 1},
		{"yesterday", paris(2027, 12, 1, 0, 0), paris(2027, 11, 30, 23, 59), -1},
		{"across the end of February", paris(2028, 2, 28, 12, 0), paris(2028, 3, 1, 12, 0), 2}, // 2028 is a leap year
		{"spring forward, 23-hour day", paris(2026, 3, 28, 12, 0), paris(2026, 3, 30, 0, 30), 2},
		{"spring forward, late to early", paris(2026, 3, 28, 23, 30), paris(2026, 3, 29, 3, 0), 1},
		{"fall back, 25-hour day", paris(2026, 10, 24, 23, 30), paris(2026, 10, 26, 0, 10), 2},
		{"fall back, early to late", paris(2026, 10, 25, 0, 5), paris(2026, 10, 25, 23, 55), 0},
		{"a whole year, both changes", paris(2026, 11, 28, 10, 0), paris(2027, 11, 28, 10, 0), 365},
		{"first of a month after the change", paris(2027, 10, 2, 0, 10), paris(2027, 11, 1, 23, 50), 30},
		{"UTC instants of another Paris day", time.Date(2027, 11, 30, 23, 30, 0, 0, time.UTC), time.Date(2027, 12, 1, 22, 30, 0, 0, time.UTC), 0},
	}
	for _, tt := range tests {
		if got := pigp.DaysUntil(tt.now, tt.exp); got != tt.want {
			t.Errorf("%s: DaysUntil(%s, %s) = %d, want %d", tt.name, tt.now, tt.exp, got, tt.want)
		}
	}
}

func TestStartOfDay(t *testing.T) {
	tests := []struct {
		t    time.Time
		days int
		want time.Time
	}{
		{paris(2026, 3, 28, 12, 0), 1, time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC)}, // 29 March, still UTC+1
		{paris(2026, 3, 28, 12, 0), 2, time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC)}, // 30 March, UTC+2
		{paris(2026, 10, 25, 12, 0), 1, time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC)},
		{paris(2027, 11, 30, 23, 59), 1, time.Date(2027, 11, 30, 23, 0, 0, 0, time.UTC)},
		{paris(2027, 12, 31, 10, 0), 1, time.Date(2027, 12, 31, 23, 0, 0, 0, time.UTC)},
		{paris(2027, 12, 1, 10, 0), -1, time.Date(2027, 11, 29, 23, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := pigp.StartOfDay(tt.t, tt.days); !got.Equal(tt.want) {
			t.Errorf("StartOfDay(%s, %d) = %s, want %s", tt.t, tt.days, got.UTC(), tt.want)
		}
	}
}

func TestCampaign(t *testing.T) {
	c, err := pigp.NewCampaign(2026, "2026-01-15", "2026-12-31")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{paris(2026, 1, 14, 23, 59), "à venir"},
		{paris(2026, 1, 15, 0, 0), "ouverte"},
		{time.Date(2026, 12, 31, 22, 59, 59, 0, time.UTC), "ouverte"}, // 23:59:59 in Paris
		{paris(2027, 1, 1, 0, 0), "close"},
	} {
		if got := c.State(tt.t); got != tt.want {
			t.Errorf("State(%s) = %q, want %q", tt.t, got, tt.want)
		}
	}
	for _, bad := range [][3]string{{"1999", "1999-01-01", "1999-12-31"}, {"2026", "2026-02-30", "2026-12-31"},
		{"2026", "2026-06-01", "2026-05-31"}, {"2026", "15/01/2026", "2026-12-31"}} {
		var year int
		for _, c := range bad[0] {
			year = year*10 + int(c-'0')
		}
		if _, err := pigp.NewCampaign(year, bad[1], bad[2]); pigp.ErrorCode(err) != pigp.EINVALID {
			t.Errorf("NewCampaign(%v) = %v, want EINVALID", bad, err)
		}
	}
	db, _ := pigp.NewCampaign(2026, "2026-03-01", "2026-03-31")
	other, _ := pigp.NewCampaign(2025, "2025-03-01", "2025-03-31")
	got := pigp.MergeCampaigns([]pigp.Campaign{c}, []pigp.Campaign{db, other})
	if len(got) != 2 || got[0].Year != 2025 || got[0].Source != pigp.CampaignFromDatabase ||
		got[1].Year != 2026 || got[1].Source != pigp.CampaignFromConfig || !got[1].Opens.Equal(c.Opens) {
		t.Fatalf("MergeCampaigns = %+v: the file's 2026 and the database's 2025", got)
	}
}
