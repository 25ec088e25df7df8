package pigp

import (
	"fmt"
	"slices"
	"time"
)

// Where a campaign window comes from.
const (
	CampaignFromConfig   = "configuration"
	CampaignFromDatabase = "base"
)

// Campaign is the window during which the call files of a campaign (the
// year at the start of their names) are accepted. Both days are included
// and read in Paris time: the window opens at midnight on Opens and closes
// at the end of Closes. A call file deposited outside every window of its
// campaign is rejected with E008 — but only once at least one window is
// configured: without any, every campaign is open.
type Campaign struct {
	Year   int
	Opens  time.Time // midnight, Paris, of the first day
	Closes time.Time // midnight, Paris, of the last day (included)
	Source string    // CampaignFromConfig or CampaignFromDatabase
}

// NewCampaign checks and builds a window from days written 2006-01-02.
func NewCampaign(year int, opens, closes string) (Campaign, error) {
	c := Campaign{Year: year}
	if year < 2000 || year > 9999 {
		return c, Errorf(EINVALID, "campagne %d invalide : une année de 2000 à 9999", year)
	}
	var err error
	if c.Opens, err = time.ParseInLocation(time.DateOnly, opens, Paris); err != nil {
		return c, Errorf(EINVALID, "date d'ouverture %q invalide : attendu AAAA-MM-JJ", opens)
	}
	if c.Closes, err = time.ParseInLocation(time.DateOnly, closes, Paris); err != nil {
		return c, Errorf(EINVALID, "date de clôture %q invalide : attendu AAAA-MM-JJ", closes)
	}
	if c.Closes.Before(c.Opens) {
		return c, Errorf(EINVALID, "campagne %d : la clôture (%s) précède l'ouverture (%s)", year, closes, opens)
	}
	return c, nil
}

// End returns the first instant after the window: midnight, Paris, of the
// day after Closes.
func (c Campaign) End() time.Time { return StartOfDay(c.Closes, 1) }

// Contains reports whether t falls within the window.
func (c Campaign) Contains(t time.Time) bool { return !t.Before(c.Opens) && t.Before(c.End()) }

// State describes the window at now, in French: "ouverte", "à venir" or "close".
func (c Campaign) State(now time.Time) string {
	switch {
	case now.Before(c.Opens):
		return "à venir"
	case c.Contains(now):
		return "ouverte"
	}
	return "close"
}

// String writes the window as "2026 : du 2026-01-15 au 2026-12-31".
func (c Campaign) String() string {
	return fmt.Sprintf("%d : du %s au %s", c.Year, c.Opens.Format(time.DateOnly), c.Closes.Format(time.DateOnly))
}

// MergeCampaigns returns the windows in force, ordered by year: those of
// the configuration file, and those recorded in the database for the other
// years (the file wins: an operator cannot silently override it).
func MergeCampaigns(configured, stored []Campaign) []Campaign {
	out := make([]Campaign, 0, len(configured)+len(stored))
	seen := map[int]bool{}
	for _, c := range configured {
		c.Source = CampaignFromConfig
		out = append(out, c)
		seen[c.Year] = true
	}
	for _, c := range stored {
		if !seen[c.Year] {
			c.Source = CampaignFromDatabase
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Campaign) int { return a.Year - b.Year })
	return out
}
