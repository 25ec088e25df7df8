// Package apa implements the APA interface contract: call-file and response
// names, the XSDs, the streaming validator and the response and report
// writers (see docs/cahier-des-charges.md).
package apa

import (
	"strconv"
	"strings"
	"time"

	"github.com/pigp/pigp"
)

// CallName is a parsed call-file name: campagne_siret_horodatage.xml.
type CallName struct {
	Campaign  int
	SIRET     string
	Timestamp time.Time // local time, Europe/Paris
}

// String returns the canonical name.
func (n CallName) String() string {
	return strconv.Itoa(n.Campaign) + "_" + n.SIRET + "_" + n.Timestamp.Format("20060102150405") + ".xml"
}

// ResponseName returns the name of the response to a call of the given
// campaign and SIRET, produced at t (contract §1).
func ResponseName(campaign int, siret string, t time.Time) string {
	return strconv.Itoa(campaign) + "_" + siret + "_" + t.Format("20060102150405") + "_REP.xml"
}

// Paris is the time zone of the horodatage in names and of local dates in
// files (pigp.Paris: embedded zone database, never a fixed offset).
var Paris = pigp.Paris

func invalid(format string, args ...any) error {
	return pigp.Errorf(pigp.EINVALID, format, args...)
}

// ParseCallName checks name against the naming rule of the contract (§1) at
// time now. It does not check which SIRETs the depositor may act for. Errors
// are *pigp.Error with code EINVALID and a French message saying why.
func ParseCallName(name string, now time.Time) (CallName, error) {
	var n CallName
	if name == "" {
		return n, invalid("nom de fichier vide")
	}
	if len(name) > 255 {
		return n, invalid("nom de fichier refusé : plus de 255 caractères")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return n, invalid("nom de fichier refusé : caractère non autorisé ; attendu AAAA_SIRET_AAAAMMJJhhmmss.xml")
		}
		if r == '/' || r == '\\' {
			return n, invalid("nom de fichier refusé : les séparateurs de chemin sont interdits")
		}
	}
	const pattern = "attendu AAAA_SIRET_AAAAMMJJhhmmss.xml (par exemple 2026_22940028800010_20261128101500.xml)"
	base, ok := strings.CutSuffix(name, ".xml")
	if !ok {
		if strings.HasSuffix(strings.ToLower(name), ".xml") {
			return n, invalid("nom de fichier %q refusé : l'extension doit être .xml en minuscules", name)
		}
		return n, invalid("nom de fichier %q refusé : l'extension doit être .xml ; %s", name, pattern)
	}
	parts := strings.Split(base, "_")
	if len(parts) != 3 {
		return n, invalid("nom de fichier %q refusé : %s", name, pattern)
	}
	camp, siret, stamp := parts[0], parts[1], parts[2]
	if len(camp) != 4 || !allDigits(camp) {
		return n, invalid("nom de fichier %q refusé : la campagne doit être une année sur 4 chiffres", name)
	}
	year, _ := strconv.Atoi(camp)
	nowParis := now.In(Paris)
	if year < 2000 || year > nowParis.Year()+1 {
		return n, invalid("nom de fichier %q refusé : campagne %d hors limites (de 2000 à %d)", name, year, nowParis.Year()+1)
	}
	if len(siret) != 14 || !allDigits(siret) {
		return n, invalid("nom de fichier %q refusé : le SIRET doit compter 14 chiffres", name)
	}
	if err := pigp.ValidateSIRET(siret); err != nil {
		return n, invalid("nom de fichier %q refusé : le SIRET %s a une clé de contrôle fausse", name, siret)
	}
	if len(stamp) != 14 || !allDigits(stamp) {
		return n, invalid("nom de fichier %q refusé : l'horodatage doit être AAAAMMJJhhmmss (14 chiffres)", name)
	}
	ts, err := time.ParseInLocation("20060102150405", stamp, Paris)
	if err != nil || ts.Format("20060102150405") != stamp {
		return n, invalid("nom de fichier %q refusé : l'horodatage %s n'est pas une date et heure réelles", name, stamp)
	}
	if ts.After(now.Add(24 * time.Hour)) {
		return n, invalid("nom de fichier %q refusé : l'horodatage %s est plus de 24 h dans le futur", name, stamp)
	}
	return CallName{Campaign: year, SIRET: siret, Timestamp: ts}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
