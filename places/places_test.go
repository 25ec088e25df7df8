package places_test

import (
	"testing"

	"github.com/pigp/pigp/places"
)

func TestTable(t *testing.T) {
	tab, err := places.Load()
	if err != nil {
		t.Fatal(err)
	}
	if n := tab.Communes(); n < 35000 {
		t.Fatalf("only %d commune codes: the generated table is incomplete", n)
	}
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"94028", true},  // Créteil
		{"75056", true},  // Paris
		{"75112", true},  // Paris 12e arrondissement
		{"2A004", true},  // Ajaccio
		{"20004", true},  // Ajaccio's code before 1976
		{"97411", true},  // Saint-Denis (La Réunion)
		{"99999", false}, // not a commune
		{"00000", false},
		{"94999", false},
	} {
		if got := tab.KnownCommune(tc.code); got != tc.want {
			t.Errorf("KnownCommune(%s) = %v, want %v", tc.code, got, tc.want)
		}
	}
	for _, tc := range []struct {
		code string
		want bool
	}{{"99350", true}, {"99109", true}, {"99100", false}, {"99000", false}, {"99600", false}, {"98350", false}, {"9935", false}} {
		if got := tab.KnownCountry(tc.code); got != tc.want {
			t.Errorf("KnownCountry(%s) = %v, want %v", tc.code, got, tc.want)
		}
	}
	for _, tc := range []struct {
		cp, commune string
		want        bool
	}{
		{"94000", "Créteil", true},
		{"94000", "CRETEIL", true},
		{"94000", "creteil cedex", true},
		{"75012", "Paris", true},
		{"75012", "Paris 12e Arrondissement", true},
		{"13001", "Marseille", true},
		{"93200", "Saint-Denis", true},
		{"93200", "St Denis", true},
		{"94000", "Vincennes", false},
		{"00000", "Créteil", false},
	} {
		if got := tab.PostalCodeMatches(tc.cp, tc.commune); got != tc.want {
			t.Errorf("PostalCodeMatches(%s, %s) = %v, want %v", tc.cp, tc.commune, got, tc.want)
		}
	}
}
