package fiscal_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pigp/pigp/fiscal"
)

// FuzzReadCSV feeds arbitrary files to the reference-data reader: it must
// never panic, and what it accepts must be consistent.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(strings.Join(fiscal.Columns, ";") + "\nF1;1;F;Nom;;P;1938-04-12;94028;2025;;;;;;\n"))
	f.Add([]byte("\ufeff" + strings.Join(fiscal.Columns, ";") + "\n\"F;1\";1;F;N;;P;1938-00-00;2A004;2025;1;2;3;4;5;6\n"))
	var gen bytes.Buffer
	fiscal.Generate(&gen, fiscal.GenerateOptions{Count: 20, Seed: 1, IncomeYear: 2025})
	f.Add(gen.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := fiscal.ReadCSV(bytes.NewReader(b), nil)
		if err != nil {
			if d != nil {
				t.Fatal("data returned with an error: an import must be all or nothing")
			}
			return
		}
		for _, p := range d.Persons {
			if p.Rank != 1 && p.Rank != 2 || p.NameKey == "" || p.FirstNameKey == "" {
				t.Fatalf("accepted person %+v", p)
			}
		}
		for _, r := range d.Resources {
			if r.Amount < 0 {
				t.Fatalf("accepted negative amount %+v", r)
			}
		}
	})
}
