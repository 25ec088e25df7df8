package apa_test

import (
	"testing"

	"github.com/pigp/pigp/apa"
)

func TestForbiddenData(t *testing.T) {
	tests := []struct {
		value string
		want  string
	}{
		{"12 RUE DES LILAS", ""},
		{"", ""},
		{"238029402812301", apa.ForbiddenNIR},
		{"NIR 2 38 02 94 028 123 01", apa.ForbiddenNIR},
		{"2.38.02.94.028.123.01", apa.ForbiddenNIR},
		{"2-38-02-94-028-123-01", apa.ForbiddenNIR},
		{"2 38 02 94 028 123 02", apa.ForbiddenNIRBadKey},    // wrong key: still a NIR
		{"1 38 05 94 028 123 45", apa.ForbiddenNIRBadKey},    // the example
		{"1 38 05 94 028 123", apa.ForbiddenNIRBadKey},       // no key
		{"1380594028123", apa.ForbiddenNIRBadKey},            // no key, no spaces
		{"NIR : 2.38.02.94.028.123", apa.ForbiddenNIRBadKey}, // dots
		{"5 38 02 94 028 123 01", ""},                        // not a sex digit
		{"2 38 13 94 028 123 01", ""},                        // month 13
		{"2 38 02 00 028 123 01", ""},                        // département 00
		{"2 38 02 94 000 123 01", ""},                        // commune 000
		{"2 38 02 94 028 000 01", ""},                        // order number 000
		{"1 45 07 2A 004 012 25", apa.ForbiddenNIR},          // Corsica: 2A counts as 19
		{"1 45 07 2B 004 012 xx", apa.ForbiddenNIRBadKey},    // no key
		{"1 45 07 2C 004 012", ""},                           // no such département
		{"REF 94000238029402812301", apa.ForbiddenNIR},       // inside a longer number
		{"REF 94000238029402812302", ""},                     // inside a longer number, wrong key
		{"TEL 01 45 17 22 33 PORTABLE 06 12 34 56 78", ""},   // phone numbers
		{"75012 01 45 17 22 33", ""},                         // postal code and phone: grouped unlike a NIR
		{"750120145172233", apa.ForbiddenNIRBadKey},          // the same digits run together look like one
		{"12 05 1938 94028", ""},                             // a date and a commune
		{"BP 12345 94000 CRETEIL CEDEX 01", ""},              // a postal box
		{"FR76 3000 6000 0112 3456 7890 189", apa.ForbiddenIBAN},
		{"fr7630006000011234567890189", apa.ForbiddenIBAN},
		{"FR76 3000 6000 0112 3456 7890 188", apa.ForbiddenIBANBadKey}, // bad checksum: still an IBAN
		{"IBAN FR12 3000 6000 0112 3456 7890 189", apa.ForbiddenIBANBadKey},
		{"FR76-30006-00001-12345678901-88", apa.ForbiddenIBANBadKey}, // RIB grouping
		{"FR76 3000 6000 0112 3456 7890 18", ""},                     // one character short
		{"FR76 3000 6000 0112 3456 7890 1889", ""},                   // a longer word
		{"DE12 RUE DE LA PAIX 94000 CRETEIL", ""},                    // country letters, not a BBAN
		{"LU 12 RUE DU MOULIN", ""},
		{"GB82 WEST 1234 5698 7654 32", apa.ForbiddenIBAN},
		{"GB83 WEST 1234 5698 7654 32", apa.ForbiddenIBANBadKey},
		{"DE89-3704-0044-0532-0130-00", apa.ForbiddenIBAN},
		{"BNPAFRPP123", apa.ForbiddenBIC},
		{"BIC BNPAFRPP", apa.ForbiddenBIC},
		{"swift: agrifrpp", apa.ForbiddenBIC},
		{"BNPAFRPP", ""},        // indistinguishable from a word without BIC/SWIFT
		{"BOULOGNE", ""},        // a word shaped like a BIC
		{"BICHAT BOULOGNE", ""}, // "BIC" inside a word is no keyword
		{"APPART12", ""},        // RT is no country
		{"BATIMENT B1 ESC 3", ""},
	}
	for _, tt := range tests {
		if got := apa.ForbiddenData(tt.value); got != tt.want {
			t.Errorf("ForbiddenData(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Lefèvre", "LEFEVRE"},
		{"  D'Artagnan--Du   Mont ", "D ARTAGNAN DU MONT"},
		{"N’Diaye", "N DIAYE"},
		{"Bœuf", "BOEUF"},
		{"Lætitia", "LAETITIA"},
		{"Strauß", "STRAUSS"},
		{"Ÿvonne Çélie", "YVONNE CELIE"},
		{"", ""},
		{" - ' ", ""},
	}
	for _, tt := range tests {
		if got := apa.NormalizeName(tt.in); got != tt.want {
			t.Errorf("NormalizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
