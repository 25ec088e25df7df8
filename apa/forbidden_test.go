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
		{"2 38 02 94 028 123 02", ""},                      // wrong key
		{"5 38 02 94 028 123 01", ""},                      // not a sex digit
		{"1 45 07 2A 004 012 25", apa.ForbiddenNIR},        // Corsica: 2A counts as 19
		{"1 45 07 2B 004 012 xx", ""},                      // no key
		{"REF 94000238029402812301", apa.ForbiddenNIR},     // inside a longer number
		{"TEL 01 45 17 22 33 PORTABLE 06 12 34 56 78", ""}, // phone numbers
		{"FR76 3000 6000 0112 3456 7890 189", apa.ForbiddenIBAN},
		{"fr7630006000011234567890189", apa.ForbiddenIBAN},
		{"FR76 3000 6000 0112 3456 7890 188", ""}, // bad checksum
		{"GB82 WEST 1234 5698 7654 32", apa.ForbiddenIBAN},
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
