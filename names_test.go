package pigp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pigp/pigp"
)

func TestNormalizeLogin(t *testing.T) {
	for in, want := range map[string]string{
		" Pmartin-XT\t":          "pmartin-xt",
		"Jean.Dupont":            "jean.dupont",
		"\xff\xfeab":             "ab",
		strings.Repeat("é", 200): strings.Repeat("é", 127),
	} {
		if got := pigp.NormalizeLogin(in); got != want {
			t.Errorf("NormalizeLogin(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 o"},
		{529, "529 o"},
		{1023, "1023 o"},
		{1024, "1 Ko"},
		{1025, "2 Ko"},
		{7 * 1024, "7 Ko"},
		{7000, "7 Ko"},
		{1 << 20, "1 Mo"},
		{3 << 19, "1,5 Mo"},
		{100 << 20, "100 Mo"},
		{1 << 30, "1 Go"},
		{3 << 29, "1,5 Go"},
		{10 << 30, "10 Go"},
	}
	for _, tt := range tests {
		if got := pigp.FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestRefusedNameAttrs(t *testing.T) {
	err := pigp.Errorf(pigp.EINVALID, "nom de fichier %q refusé", "x")
	for name, kept := range map[string]bool{
		"2026_22940028800010_20260301101500.xml":                  true,
		"2026_22940028800010_20260301101500.xml.filepart":         true,
		".in.2026_22940028800010_20260301101500.xml":              true,
		"2026_22940028800010_20260301101500.xml.3f2a9c.partial":   true,
		"DUPONT_Jean_ne_le_12_04_1938.xml":                        false,
		"2026_22940028800010_20260301101500.xml; DUPONT Jean.xml": false,
		"2026_22940028800010_20260301101500.xml\nDUPONT Jean.xml": false,
	} {
		attrs := fmt.Sprint(pigp.RefusedNameAttrs(name, err))
		if got := strings.Contains(attrs, name); got != kept {
			t.Errorf("%q: logged literally %v, want %v (%s)", name, got, kept, attrs)
		}
		if !kept && (strings.Contains(attrs, "DUPONT") || !strings.Contains(attrs, "invalid")) {
			t.Errorf("%q: %s", name, attrs)
		}
	}
}
