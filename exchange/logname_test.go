package exchange

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pigp/pigp"
)

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
		attrs := fmt.Sprint(RefusedNameAttrs(name, err))
		if got := strings.Contains(attrs, name); got != kept {
			t.Errorf("%q: logged literally %v, want %v (%s)", name, got, kept, attrs)
		}
		if !kept && (strings.Contains(attrs, "DUPONT") || !strings.Contains(attrs, "invalid")) {
			t.Errorf("%q: %s", name, attrs)
		}
	}
}
