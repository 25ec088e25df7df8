package pigp

import (
	"fmt"
	"time"
	_ "time/tzdata" // Europe/Paris must load even where the system has no zoneinfo
)

// Paris is the time zone of every date a person reads (portal, e-mails,
// history files) and of the local times of the contract. The zone database
// is embedded, so loading it cannot fail; a fixed offset would put summer
// times an hour off.
var Paris = mustLoadParis()

func mustLoadParis() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic("pigp: load Europe/Paris: " + err.Error())
	}
	return loc
}

var frenchMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
	"septembre", "octobre", "novembre", "décembre"}

// FrenchDate writes the day of t in Paris as French does in prose:
// "23 septembre 2027", and "1er décembre 2027" for the first of a month.
func FrenchDate(t time.Time) string {
	p := t.In(Paris)
	day := fmt.Sprint(p.Day())
	if p.Day() == 1 {
		day = "1er"
	}
	return fmt.Sprintf("%s %s %d", day, frenchMonths[p.Month()-1], p.Year())
}

// civilDay returns the calendar day of t in Paris as midnight UTC, so that
// differences between days are whole multiples of 24 hours whatever the
// daylight-saving changes in between.
func civilDay(t time.Time) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// DaysUntil returns the number of calendar days, in Paris, from the day of
// now to the day of t: 0 when t falls today, 1 tomorrow, negative when the
// day of t is past. It is what "expire dans N jours" means next to the
// date FrenchDate(t).
func DaysUntil(now, t time.Time) int {
	return int(civilDay(t).Sub(civilDay(now)) / (24 * time.Hour))
}

// StartOfDay returns midnight, Paris time, of the calendar day of t plus
// days (which may be negative): the first instant of that day.
func StartOfDay(t time.Time, days int) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d+days, 0, 0, 0, 0, Paris)
}

// FrenchDuration writes d in French, rounded up to the unit shown:
// "8 secondes", "15 minutes", "1 heure".
func FrenchDuration(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n > 1 {
			return fmt.Sprintf("%d %ss", n, unit)
		}
		return fmt.Sprintf("%d %s", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(max(1, int((d+time.Second-1)/time.Second)), "seconde")
	case d < time.Hour:
		return plural(int((d+time.Minute-1)/time.Minute), "minute")
	default:
		return plural(int((d+time.Hour-1)/time.Hour), "heure")
	}
}
