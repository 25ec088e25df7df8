package places

import (
	"strings"
	"testing"
)

func TestParseRejectsMalformedTables(t *testing.T) {
	for name, text := range map[string]string{
		"empty":            "",
		"header only":      "# header\n",
		"no final newline": "C\t01001",
		"unknown kind":     "X\t01001\n",
		"short code":       "C\t0100\n",
		"postal no name":   "P\t94000\t\n",
		"France a country": "K\t99100\n",
		"letters in code":  "K\t99ABC\n",
		"commune letters":  "C\t2C004\n",
		"postal two names": "P\t94000\tA\tB\n",
		"not a country":    "K\t94028\n",
		"unsorted":         "C\t01002\nC\t01001\n",
		"duplicate":        "C\t01001\nC\t01001\n",
	} {
		if _, err := Parse(text); err == nil {
			t.Errorf("%s: Parse(%q) accepted", name, text)
		}
	}
}

func TestParseErrorLineNumbers(t *testing.T) {
	for text, want := range map[string]string{
		"# header\nC\t01001\nC\t0100\n": "line 3",
		"C\t01002\nC\t01001\n":          "line 2",
		"# header\n":                    "without data",
		"# header":                      "without data",
	} {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", text, err, want)
		}
	}
}

func TestParseAllocatesNothingButTheTable(t *testing.T) {
	if n := testing.AllocsPerRun(3, func() { Load() }); n > 1 {
		t.Errorf("Load makes %.0f allocations, want 1", n)
	}
}

func TestLookupEdges(t *testing.T) {
	tab, err := Parse("# h\nC\t01001\nC\t2A004\nC\t97411\nP\t13001\tMARSEILLE\nP\t94000\tCRETEIL\nP\t94000\tCRETEIL CEDEX\n")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Communes() != 3 {
		t.Fatalf("Communes() = %d, want 3", tab.Communes())
	}
	for line, want := range map[string]bool{
		"C\t01001": true, "C\t2A004": true, "C\t97411": true, // first, middle, last of a section
		"P\t13001\tMARSEILLE": true, "P\t94000\tCRETEIL CEDEX": true, // last line of the table
		"C\t00000": false, "C\t2A005": false, "C\t99999": false, // before, between, after
		"P\t94000\tCRET": false, "P\t94000\tCRETEIL CEDEX 1": false, "P\t99999\tX": false, // prefixes and extensions
		"": false, "C": false, "# h": false,
	} {
		if got := tab.has(line); got != want {
			t.Errorf("has(%q) = %v, want %v", line, got, want)
		}
	}
}

// TestLookupAgreesWithScan checks every line of the real table, and a
// variant of each that must be absent, against the binary search.
func TestLookupAgreesWithScan(t *testing.T) {
	tab, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(tab.lines, "\n"), "\n")
	for _, line := range lines {
		if !tab.has(line) {
			t.Fatalf("has(%q) = false for a line of the table", line)
		}
		if tab.has(line + "~") {
			t.Fatalf("has(%q) = true for a line not in the table", line+"~")
		}
	}
}

func BenchmarkKnownCommune(b *testing.B) {
	tab, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		tab.KnownCommune("94028")
	}
}

func BenchmarkPostalCodeMatches(b *testing.B) {
	tab, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		tab.PostalCodeMatches("94300", "Vincennes")
	}
}
